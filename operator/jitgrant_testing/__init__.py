"""Test and demo harness for jitgrant: never imported by the operator itself.

It holds the environment that installs the operator on a cluster as the chart would, the AWS and OIDC
stand-ins, test TLS, the demo scenarios and the launcher of a real kube-apiserver built from source.
"""
