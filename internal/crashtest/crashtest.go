// Package crashtest runs a test's helper in a child process and kills it
// with SIGKILL mid-work, for tests of what survives a crash.
//
// The parent test calls Run with the name of a helper test in the same
// binary; the helper, seeing its environment variable, does the work and
// prints a line for each thing it acknowledges. Run hands every line to the
// parent's callback, kills the child when the callback says so, keeps
// reading what the child printed before it died, and fails the test if the
// child ended without being killed.
package crashtest

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"testing"
	"time"
)

// childTimeout bounds a child that stops printing, so it cannot hang the
// test.
const childTimeout = 60 * time.Second

// Run starts the current test binary running only the test named helper,
// with env added to its environment, and calls line with each line the
// child prints on stdout; once line returns true the child is killed with
// SIGKILL. Lines printed between that moment and the kill are still passed
// to line, whose answer then no longer matters. The child's stdin stays open
// until it is killed, so a child that has finished its work can wait on it
// and be found running.
func Run(t testing.TB, helper string, env []string, line func(string) (kill bool)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+helper+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	watchdog := time.AfterFunc(childTimeout, func() { _ = cmd.Process.Kill() })
	defer watchdog.Stop()

	killed := false
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if line(sc.Text()) && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill %s: %v", helper, err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("%s stopped before it was killed: %v\n%s", helper, err, stderr.String())
	}
}
