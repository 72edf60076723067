"""One table of exit codes for every `jitgrant` command, so a script can branch on the code alone.

The same code means the same thing whichever command returns it: a timeout is 11 whether
`request --wait` or `revoke --all --wait` gave up. `EXIT_CODES_HELP` is printed by `--help` and
copied into the README.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    CHECK_FAILED = 1  # policy test/lint: a case did not match, or a file or policy has an error
    USAGE = 2  # a malformed option or argument; the message names it and the expected form
    NOT_FOUND = 3  # the named AccessRequest does not exist
    REFUSED = 4  # the API server refused, could not be reached, or the webhook did not record it
    DENIED = 10  # denied by the policy or by an approver
    TIMED_OUT = 11  # nobody decided in time, or --wait-timeout passed first
    FAILED = 12  # the operator could not issue the grant
    ENDED = 13  # revoked, expired or deleted before it could be used
    INTERRUPTED = 130  # Ctrl-C (what was filed stays filed)


EXIT_CODES_HELP = """\
exit codes (the same for every command):
  0   done (request: the grant is active, or filed without --wait; watch: the stream ended)
  1   policy test/lint: a case's outcome differed from its expectation, or a file is unusable
  2   usage: a malformed option, a missing kubeconfig or unknown context (the message says which)
  3   not found: the named AccessRequest does not exist
  4   the API server refused or could not be reached (RBAC, webhook, credentials, network)
  10  denied: by the policy or by an approver (the reason is printed)
  11  timed out: nobody decided within pendingTimeout, or --wait-timeout passed first
  12  failed: the operator could not issue the grant (audit unavailable, cluster refused, ...)
  13  revoked, expired or deleted before it could be used
  130 interrupted (what was filed stays filed)
"""
