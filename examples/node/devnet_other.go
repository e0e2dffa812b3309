//go:build !unix

package main

import (
	"os"
	"syscall"
)

// childProcAttr has nothing to set where there are no process groups.
func childProcAttr() *syscall.SysProcAttr { return nil }

// killGroup kills a node.
func killGroup(p *os.Process) { _ = p.Kill() }
