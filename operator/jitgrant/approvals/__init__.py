"""Who may approve, how approvals are recorded (receipts) and how they are counted. Pure."""
