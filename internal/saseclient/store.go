package saseclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/zalando/go-keyring"
)

// Credentials are what a logon leaves behind: where it was, and the tokens.
type Credentials struct {
	Server       string    `json:"server"`
	Enterprise   string    `json:"enterprise"`
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// ErrNotLoggedOn: no credentials are stored.
var ErrNotLoggedOn = errors.New("not logged on: run qiao login first")

// Store keeps the credentials: in the OS keyring (Secret Service, macOS Keychain, Windows
// Credential Manager) when there is one, otherwise in a file only the user can read.
type Store struct {
	// Dir is the directory of the fallback file (and of the note saying the keyring holds them);
	// "" takes os.UserConfigDir()/qiao.
	Dir string
	// NoKeyring skips the keyring (tests; machines whose keyring must not be used).
	NoKeyring bool
}

const keyringService, keyringUser = "qiao", "sase-client"

func (s *Store) dir() (string, error) {
	if s.Dir != "" {
		return s.Dir, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no directory for the credentials: %w", err)
	}
	return filepath.Join(d, "qiao"), nil
}

// File is the path of the fallback file.
func (s *Store) File() (string, error) {
	d, err := s.dir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "credentials.json"), nil
}

// Save stores the credentials and says where ("keyring" or the file's path).
func (s *Store) Save(c *Credentials) (string, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("encode credentials: %w", err)
	}
	path, err := s.File()
	if err != nil {
		return "", err
	}
	if !s.NoKeyring {
		if err := keyring.Set(keyringService, keyringUser, string(b)); err == nil {
			_ = os.Remove(path) // an older file copy must not outlive the keyring's
			return "keyring", nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("credentials directory: %w", err)
	}
	// Written under a temporary name with mode 0600 from the start, then renamed: never readable
	// by others, never half written.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return "", fmt.Errorf("credentials file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("credentials file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return "", fmt.Errorf("credentials file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("credentials file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("credentials file: %w", err)
	}
	return path, nil
}

// Load returns the stored credentials, or ErrNotLoggedOn.
func (s *Store) Load() (*Credentials, error) {
	var raw []byte
	if !s.NoKeyring {
		if v, err := keyring.Get(keyringService, keyringUser); err == nil {
			raw = []byte(v)
		}
	}
	if raw == nil {
		path, err := s.File()
		if err != nil {
			return nil, err
		}
		raw, err = os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, ErrNotLoggedOn
		}
		if err != nil {
			return nil, fmt.Errorf("read credentials: %w", err)
		}
	}
	var c Credentials
	if err := json.Unmarshal(raw, &c); err != nil || c.RefreshToken == "" {
		return nil, fmt.Errorf("the stored credentials are unreadable; run qiao login again")
	}
	return &c, nil
}

// Delete forgets the credentials wherever they are.
func (s *Store) Delete() error {
	if !s.NoKeyring {
		// No keyring at all is the usual case on a server: then nothing was stored there.
		_ = keyring.Delete(keyringService, keyringUser)
	}
	path, err := s.File()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove credentials: %w", err)
	}
	return nil
}
