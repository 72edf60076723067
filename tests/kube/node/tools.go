//go:build tools

// Package tools keeps the upstream node commands in go.mod so `go mod tidy` and
// `go build` resolve them from this module's pinned versions (the same as ../go.mod).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
