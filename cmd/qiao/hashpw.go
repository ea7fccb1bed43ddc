package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/qiao-gateway/qiao/internal/password"
)

func hashPasswordCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "hash-password",
		Short: "Read a password and print its argon2id hash for config.yaml",
		Long: "Print the argon2id PHC string of a password, for the password_hash of a local user in config.yaml.\n" +
			"On a terminal it asks for the password twice without echoing it; otherwise it reads one line on\n" +
			"standard input (a file, a secret manager's output). Typing the password on the command line would\n" +
			"leave it in the shell's history, so there is no argument for it. Examples:\n\n" +
			"  qiao hash-password\n  qiao hash-password < password.txt",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var pw string
			if f, ok := cmd.InOrStdin().(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				var err error
				if pw, err = promptPassword(f, cmd.ErrOrStderr()); err != nil {
					return err
				}
			} else {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return errors.New("no password on standard input")
				}
				pw = strings.TrimRight(line, "\r\n")
			}
			if pw == "" {
				return errors.New("empty password")
			}
			h, err := password.Hash(pw, password.Default)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), h)
			return nil
		},
	}
}

// promptPassword asks for the password twice on the terminal tty, echo off.
func promptPassword(tty *os.File, prompt io.Writer) (string, error) {
	read := func(label string) (string, error) {
		fmt.Fprint(prompt, label)
		b, err := term.ReadPassword(int(tty.Fd()))
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return string(b), nil
	}
	pw, err := read("Password: ")
	if err != nil || pw == "" {
		return pw, err
	}
	again, err := read("Password again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords differ; nothing printed")
	}
	return pw, nil
}
