//go:build !linux

package main

import "syscall"

// childAttr: elsewhere a child is only killed by the bench's context.
func childAttr() *syscall.SysProcAttr { return nil }
