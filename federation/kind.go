package federation

import (
	"fmt"
	"maps"
	"sync"
)

// Connector is one source's connector, opened from its kind's typed config: the config itself,
// checked by Validate, opens the capabilities. A capability the kind lacks returns an error.
type Connector interface {
	// Validate checks the settings every capability needs; a bad one is a *SettingError.
	Validate() error
	Reader() (DirectoryReader, error)
	Login() (Login, error)
	Decoder() (CallbackDecoder, error)
}

// InAppPage is a Login whose in-app flow runs in a page qiao serves: the platform's app hands
// that page a code through its JS API (DingTalk's dd.requestAuthCode) instead of redirecting, so
// the broker renders the page rather than going to AuthURL.
type InAppPage interface {
	Login
	// InAppPage returns the organisation and the app the page asks the platform's app for a code.
	InAppPage() (corpID, clientID string)
}

// SettingError is a source setting a connector cannot use. Key names the entry of the source's
// maps ("config.corp_id", "secrets.secret") so that a config loader can report it at that key.
type SettingError struct {
	Key    string
	Reason string
}

// Error reads as it always has: "config.corp_id is required (...)".
func (e *SettingError) Error() string { return e.Key + " " + e.Reason }

// Kind is a platform kind of identity source, registered once by the package that links it
// (federation/connectors), so that the sync engine and the broker look up what differs between
// platforms instead of switching on their names.
type Kind struct {
	// Name is the source kind as configured and stored ("wecom").
	Name string
	// Parse reads a source's config and secrets maps into the kind's typed config. It fails only
	// on a value it cannot read; the returned connector's Validate checks the rest.
	Parse func(config, secrets map[string]string) (Connector, error)
	// DefaultMapping maps local fields (username, name, email, mobile) to the upstream
	// attributes the kind's reader fills; nil is StandardMapping.
	DefaultMapping map[string]string
	// InApp reports whether a browser's User-Agent is the platform's own app, where logins take
	// the in-app flow; nil: the kind has none.
	InApp func(userAgent string) bool
}

// StandardMapping is the field mapping of a kind whose reader names its attributes as User.Attrs
// documents.
var StandardMapping = map[string]string{"username": "userid", "name": "name", "email": "email", "mobile": "mobile"}

// Mapping returns a copy of the kind's default field mapping, for the caller to extend.
func (k Kind) Mapping() map[string]string {
	if k.DefaultMapping == nil {
		return maps.Clone(StandardMapping)
	}
	return maps.Clone(k.DefaultMapping)
}

// Open parses and validates a source's settings.
func (k Kind) Open(config, secrets map[string]string) (Connector, error) {
	c, err := k.Parse(config, secrets)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var registry struct {
	sync.RWMutex
	kinds map[string]Kind
	names []string // in registration order: the order kinds are listed to admins
}

// Register makes a kind known. Registering a name twice, or a kind without a name or Parse, is a
// programming error and panics.
func Register(k Kind) {
	if k.Name == "" || k.Parse == nil {
		panic("federation: Register of a kind without a name or Parse")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.kinds[k.Name]; dup {
		panic(fmt.Sprintf("federation: kind %q registered twice", k.Name))
	}
	if registry.kinds == nil {
		registry.kinds = map[string]Kind{}
	}
	registry.kinds[k.Name] = k
	registry.names = append(registry.names, k.Name)
}

// LookupKind returns the registered kind of that name.
func LookupKind(name string) (Kind, bool) {
	registry.RLock()
	defer registry.RUnlock()
	k, ok := registry.kinds[name]
	return k, ok
}

// KindNames lists the registered kinds in registration order.
func KindNames() []string {
	registry.RLock()
	defer registry.RUnlock()
	return append([]string(nil), registry.names...)
}
