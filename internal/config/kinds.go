package config

import (
	"fmt"
	"strings"
	"sync"
)

// LocalKind is the kind of the enterprise's own directory (password logon, the Users declared
// here). It is config's own; the platform kinds are registered.
const LocalKind = "local"

// SourceCheck checks the config and secrets maps of a declared source of one kind. An *Error it
// returns names the key within the source ("config.corp_id"); Validate reports it under the
// source's own key.
type SourceCheck func(config, secrets map[string]string) error

var kinds struct {
	sync.RWMutex
	names  []string // registration order: the order the error message lists them in
	checks map[string]SourceCheck
}

// RegisterSourceKind makes kind a valid source kind, its declared sources checked by check (nil:
// not checked). The platform kinds live above internal, which can't import them, so they register
// from there: federation/connectors, linked by every binary that loads a config, registers each
// kind it links. Registering a kind twice panics.
func RegisterSourceKind(kind string, check SourceCheck) {
	kinds.Lock()
	defer kinds.Unlock()
	if _, dup := kinds.checks[kind]; dup || kind == LocalKind {
		panic(fmt.Sprintf("config: source kind %q registered twice", kind))
	}
	if kinds.checks == nil {
		kinds.checks = map[string]SourceCheck{}
	}
	kinds.names = append(kinds.names, kind)
	kinds.checks[kind] = check
}

// sourceKind returns the check of a known kind.
func sourceKind(kind string) (SourceCheck, bool) {
	if kind == LocalKind {
		return nil, true
	}
	kinds.RLock()
	defer kinds.RUnlock()
	check, ok := kinds.checks[kind]
	return check, ok
}

// SourceKinds lists the kinds a declared source may have: the registered ones, then LocalKind.
func SourceKinds() []string {
	kinds.RLock()
	defer kinds.RUnlock()
	return append(append([]string(nil), kinds.names...), LocalKind)
}

// kindList is "wecom, dingtalk or local".
func kindList() string {
	all := SourceKinds()
	if len(all) == 1 {
		return all[0]
	}
	return strings.Join(all[:len(all)-1], ", ") + " or " + all[len(all)-1]
}
