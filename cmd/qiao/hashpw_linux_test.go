package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/qiao-gateway/qiao/internal/password"
)

// openPTY opens a pseudo-terminal pair: the controlling side (what a terminal emulator holds) and
// the terminal the command reads.
func openPTY(t *testing.T) (ctl, tty *os.File) {
	t.Helper()
	ctl, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ctl.Close() })
	if err := unix.IoctlSetPointerInt(int(ctl.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ctl.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	return ctl, tty
}

// On a terminal, hash-password asks twice with echo off: what is typed never shows.
func TestHashPasswordOnATerminalDoesNotEcho(t *testing.T) {
	ctl, tty := openPTY(t)
	// Everything the terminal shows (prompts and any echo), read as it comes.
	screen := &syncBuffer{}
	go func() {
		b := make([]byte, 1024)
		for {
			n, err := ctl.Read(b)
			screen.Write(b[:n])
			if err != nil {
				return
			}
		}
	}()
	var out bytes.Buffer
	root := newRoot()
	root.SetArgs([]string{"hash-password"})
	root.SetIn(tty)
	root.SetOut(&out)
	root.SetErr(tty)
	done := make(chan error, 1)
	go func() { done <- root.Execute() }()

	// type waits for the prompt, then for echo to be off on the terminal, then types line.
	typeAt := func(prompt string, count int, line string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			tio, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Count(screen.String(), prompt) >= count && tio.Lflag&unix.ECHO == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q with echo off within 10 s; the terminal shows %q", prompt, screen.String())
			}
			time.Sleep(5 * time.Millisecond)
		}
		if _, err := ctl.Write([]byte(line + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	typeAt("Password: ", 1, "correct horse")
	typeAt("Password again: ", 1, "correct horse")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("hash-password did not finish")
	}
	if ok, err := password.Verify("correct horse", strings.TrimSpace(out.String())); !ok || err != nil {
		t.Fatalf("printed %q, which does not verify: %v", out.String(), err)
	}
	if strings.Contains(screen.String(), "correct horse") {
		t.Fatalf("the password was echoed: %q", screen.String())
	}

	// Two different entries: refused, nothing printed.
	out.Reset()
	root = newRoot()
	root.SetArgs([]string{"hash-password"})
	root.SetIn(tty)
	root.SetOut(&out)
	root.SetErr(tty)
	go func() { done <- root.Execute() }()
	typeAt("Password: ", 2, "one")
	typeAt("Password again: ", 2, "two")
	if err := <-done; err == nil || !strings.Contains(err.Error(), "differ") || out.Len() != 0 {
		t.Fatalf("different entries: %v, printed %q", err, out.String())
	}
}
