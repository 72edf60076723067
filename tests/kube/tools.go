//go:build tools

// Package tools keeps the upstream commands in go.mod so `go mod tidy` and
// `go build` resolve them from this module's pinned versions.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
