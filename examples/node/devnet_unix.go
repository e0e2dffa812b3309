//go:build unix && !linux

package main

import (
	"os"
	"syscall"
)

// childProcAttr puts a node in its own process group, so a Ctrl-C in the
// terminal reaches devnet alone and devnet stops the nodes in order. Only
// Linux can also have the kernel kill the node when devnet dies.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}

// killGroup kills a node and anything it started: its process group.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}
