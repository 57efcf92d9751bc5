//go:build !linux

package main

import "errors"

func netnsUnavailable() string { return "network namespaces are Linux only" }

func newNetnsNet(*demo) (demoNet, error) { return nil, errors.New("network namespaces are Linux only") }
