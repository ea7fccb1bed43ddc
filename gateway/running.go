package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/qiao-gateway/qiao/internal/config"
)

// RunningFile is the file, in the data directory, where a serving gateway records the external URL
// and listen address it runs with, for the commands that show URLs (qiao sources, qiao apps) and
// run without the gateway's flags and environment.
//
// It is a file beside the database and the master key rather than a row in the store: it describes
// one process on one machine (its listen address, its pid), it is written before the store is
// opened and needs no schema change, and the commands that read it already need the data
// directory. A replica sharing PostgreSQL keeps its own; they agree on the external URL.
const RunningFile = "running.json"

// Running is what a serving gateway records about itself.
type Running struct {
	ExternalURL string    `json:"external_url"`
	Listen      string    `json:"listen"`
	PID         int       `json:"pid"`
	Version     string    `json:"version"`
	StartedAt   time.Time `json:"started_at"`
}

// WriteRunning records r in dataDir (atomically: write a temporary file, then rename). A data
// directory that does not exist (PostgreSQL, a master key and keys elsewhere: nothing else is kept
// there) is not created: then nothing is recorded and the commands use the configuration.
func WriteRunning(dataDir string, r Running) error {
	if st, err := os.Stat(dataDir); err != nil || !st.IsDir() {
		return nil
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dataDir, ".running-*")
	if err != nil {
		return fmt.Errorf("record the running configuration: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("record the running configuration: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("record the running configuration: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dataDir, RunningFile)); err != nil {
		return fmt.Errorf("record the running configuration: %w", err)
	}
	return nil
}

// ReadRunning returns what the last gateway serving from dataDir recorded, or nil when none has.
func ReadRunning(dataDir string) (*Running, error) {
	p := filepath.Join(dataDir, RunningFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Running
	if err := json.Unmarshal(b, &r); err != nil || r.ExternalURL == "" {
		return nil, fmt.Errorf("%s is not what qiao serve writes (%v): remove it; the next qiao serve writes it again", p, err)
	}
	return &r, nil
}

// NewLoggerTo builds the JSON (or text) logger the config asks for, writing to w.
func NewLoggerTo(w io.Writer, cfg *config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel()}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
