// Package connectors links the platform kinds into a binary: it registers each with the
// federation registry (for the broker and the sync engine) and with config (so a declared source
// is checked when the config loads), and opens a source's connector from its kind, config and
// secrets. Adding a kind is its package and one line in kinds.
package connectors

import (
	"errors"
	"fmt"

	"github.com/qiao-gateway/qiao/federation"
	"github.com/qiao-gateway/qiao/federation/dingtalk"
	"github.com/qiao-gateway/qiao/federation/wecom"
	"github.com/qiao-gateway/qiao/internal/config"
)

// kinds are the platforms this build links, in the order they are listed to admins. The list is
// explicit rather than each package registering in its init: Go initialises packages in import
// path order, which would make that order an accident of the packages' names.
var kinds = []func() federation.Kind{
	wecom.Kind,
	dingtalk.Kind,
}

func init() {
	for _, kind := range kinds {
		k := kind()
		federation.Register(k)
		config.RegisterSourceKind(k.Name, func(cfg, secrets map[string]string) error { return check(k, cfg, secrets) })
	}
}

// check validates a declared source through its kind, naming the setting at fault in config's
// terms.
func check(k federation.Kind, cfg, secrets map[string]string) error {
	_, err := k.Open(cfg, secrets)
	var se *federation.SettingError
	if errors.As(err, &se) {
		return &config.Error{Key: se.Key, Reason: se.Reason}
	}
	return err
}

// open opens a source's connector; none says what a kind without one lacks.
func open(kind, none string, cfg, secrets map[string]string) (federation.Connector, error) {
	k, ok := federation.LookupKind(kind)
	if !ok {
		return nil, fmt.Errorf("%s for kind %q", none, kind)
	}
	return k.Open(cfg, secrets)
}

// Open parses and validates a source's settings as its kind's connector.
func Open(kind string, cfg, secrets map[string]string) (federation.Connector, error) {
	return open(kind, "no connector", cfg, secrets)
}

// Reader opens the directory reader of a source.
func Reader(kind string, cfg, secrets map[string]string) (federation.DirectoryReader, error) {
	c, err := open(kind, "no connector", cfg, secrets)
	if err != nil {
		return nil, err
	}
	return c.Reader()
}

// Decoder opens the callback decoder of a source.
func Decoder(kind string, cfg, secrets map[string]string) (federation.CallbackDecoder, error) {
	c, err := open(kind, "no event callbacks", cfg, secrets)
	if err != nil {
		return nil, err
	}
	return c.Decoder()
}

// Login opens the upstream login of a source.
func Login(kind string, cfg, secrets map[string]string) (federation.Login, error) {
	c, err := open(kind, "no upstream login", cfg, secrets)
	if err != nil {
		return nil, err
	}
	return c.Login()
}
