package main

import (
	"os"
	"syscall"
)

// childProcAttr puts a node in its own process group, so a Ctrl-C in the
// terminal reaches devnet alone and devnet stops the nodes in order, and has
// the kernel kill the node if devnet dies without stopping it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills a node and anything it started: its process group.
func killGroup(p *os.Process) {
	if err := syscall.Kill(-p.Pid, syscall.SIGKILL); err != nil {
		_ = p.Kill()
	}
}
