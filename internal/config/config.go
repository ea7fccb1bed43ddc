// Package config loads qiao's settings: built-in defaults, then an optional YAML file, then QIAO_*
// environment variables, then command-line flags. Unknown keys and bad values are errors that name
// the key.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qiao-gateway/qiao/directory"
)

// Config is every setting of a gateway.
type Config struct {
	// Listen is the address the HTTP server binds.
	Listen string `yaml:"listen"`
	// ExternalURL is the base URL people and platforms reach the gateway at; every public endpoint
	// (issuers, callbacks, SAML metadata) derives from it.
	ExternalURL string `yaml:"external_url"`
	// DataDir holds the SQLite database, the generated master key and the keys directory in the
	// embedded setup.
	DataDir string `yaml:"data_dir"`
	// Storage is the durable store DSN: sqlite://PATH or postgres://...
	Storage string `yaml:"storage"`
	// State is the ephemeral store DSN: memory or redis://HOST:PORT/DB.
	State string `yaml:"state"`
	// KeysDir holds the signing keys.
	KeysDir string `yaml:"keys_dir"`
	// MasterKey encrypts secrets at rest (base64 of 32 bytes). Empty: generated into
	// DATA_DIR/master.key on first start.
	MasterKey string `yaml:"master_key"`
	// MasterKeyFile names a file holding the master key instead (see secrets.go); Load reads it
	// into MasterKey.
	MasterKeyFile string `yaml:"master_key_file"`
	// KeyRotationGrace is how long a rotated-out signing key stays published.
	KeyRotationGrace Duration `yaml:"key_rotation_grace"`
	Log              Log      `yaml:"log"`
	// TrustedProxies are CIDRs whose X-Forwarded-For is believed when logging client IPs.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// SyncRecordRetention is how long sync tasks and their records are kept.
	SyncRecordRetention Duration `yaml:"sync_record_retention"`
	// SyncScheduler runs due sync tasks (automatic synchronization and daily verification).
	SyncScheduler *bool `yaml:"sync_scheduler"`
	// EventMaxSkew is how far a callback's timestamp may be from now; older or newer ones are
	// rejected, and replays are remembered for twice this long.
	EventMaxSkew Duration `yaml:"event_max_skew"`
	// SessionIdle ends an SSO session unused this long; SessionAbsolute ends it this long after
	// login however it is used.
	SessionIdle     Duration `yaml:"session_idle"`
	SessionAbsolute Duration `yaml:"session_absolute"`
	// ShutdownTimeout bounds the graceful drain on SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// DrainDelay is how long, after SIGTERM, /readyz says 503 while the replica still accepts new
	// requests, so a load balancer that checks it stops sending before the listener closes.
	DrainDelay Duration `yaml:"drain_delay"`
	// Enterprises are declared here and applied to the store at start (idempotently).
	Enterprises []Enterprise `yaml:"enterprises"`

	// externalFromListen: no external URL was set; it is http://{listen}.
	externalFromListen bool
}

// Log is the logging section.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // json or text
}

// Enterprise is an enterprise declared in the file.
type Enterprise struct {
	ID               string            `yaml:"id"`
	Name             string            `yaml:"name"`
	Sources          []Source          `yaml:"sources"`
	Clients          []Client          `yaml:"clients"`
	ServiceProviders []ServiceProvider `yaml:"service_providers"`
	Users            []User            `yaml:"users"`
	// Admins are the people of the enterprise's directory who administer it through the admin
	// API, by username, each with a role: owner, admin or auditor.
	Admins []Admin `yaml:"admins"`
	// Provisioning pushes the directory into a WeCom corp (provisioning.go).
	Provisioning *Provisioning `yaml:"provisioning"`
}

// Admin grants a person of the enterprise's directory a role in the admin API.
type Admin struct {
	User string `yaml:"user"`
	Role string `yaml:"role"` // owner, admin or auditor
}

// Source is an identity source declared in the file.
type Source struct {
	ID          string `yaml:"id"`
	Kind        string `yaml:"kind"` // LocalKind or a registered platform kind (wecom, dingtalk)
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Enabled     *bool  `yaml:"enabled"`
	// Authoritative: a person this source removes departs entirely, whatever other sources say
	// (default true for wecom and dingtalk, false for local).
	Authoritative *bool `yaml:"authoritative"`
	Sync          Sync  `yaml:"sync"`
	// Config holds the kind's non-secret settings (corp_id, agent_id, api_base_url, ...).
	Config map[string]string `yaml:"config"`
	// Secrets holds the kind's secrets (secret, contact_secret, callback_token, ...). They are
	// encrypted when stored.
	Secrets map[string]string `yaml:"secrets"`
}

// Sync is a source's synchronization settings; unset fields keep the defaults.
type Sync struct {
	Auto           *bool          `yaml:"auto"`
	UserInfo       *bool          `yaml:"user_info"`
	CycleHours     int            `yaml:"cycle_hours"`
	VerifyAt       string         `yaml:"verify_at"`
	Scope          []string       `yaml:"scope"` // upstream department IDs; empty = the whole org
	MatchBy        string         `yaml:"match_by"`
	DeleteUsers    *int           `yaml:"delete_users_threshold"`
	DeleteDepts    *int           `yaml:"delete_departments_threshold"`
	FieldMappings  []FieldMapping `yaml:"field_mappings"`
	ExtendedFields []string       `yaml:"extended_fields"`
}

// syncKeys names the directory's sync fields as this file spells them.
var syncKeys = strings.NewReplacer("sync.delete_users", "sync.delete_users_threshold",
	"sync.delete_depts", "sync.delete_departments_threshold", "sync.scope_dept_ids", "sync.scope")

// settings is the directory's form of these settings, unset fields at their defaults, for the
// directory's validation.
func (s Sync) settings() directory.SyncSettings {
	d := directory.DefaultSyncSettings()
	if s.CycleHours != 0 {
		d.CycleHours = s.CycleHours
	}
	if s.MatchBy != "" {
		d.MatchBy = s.MatchBy
	}
	d.VerifyAt = s.VerifyAt
	d.ScopeAll, d.ScopeDeptIDs = len(s.Scope) == 0, s.Scope
	if s.DeleteUsers != nil {
		d.DeleteUsers = *s.DeleteUsers
	}
	if s.DeleteDepts != nil {
		d.DeleteDepts = *s.DeleteDepts
	}
	return d
}

// FieldMapping maps an upstream attribute to a local or extended field.
type FieldMapping struct {
	Upstream string `yaml:"upstream"`
	Local    string `yaml:"local"`
}

// Client is an OIDC client declared in the file.
type Client struct {
	ID     string `yaml:"id"`
	Name   string `yaml:"name"`
	Type   string `yaml:"type"` // native, web, service
	Secret string `yaml:"secret"`
	// SecretFile names a file holding the secret instead; Load reads it into Secret.
	SecretFile             string   `yaml:"secret_file"`
	AuthMethod             string   `yaml:"auth_method"`
	RedirectURIs           []string `yaml:"redirect_uris"`
	PostLogoutRedirectURIs []string `yaml:"post_logout_redirect_uris"`
	GrantTypes             []string `yaml:"grant_types"`
	Scopes                 []string `yaml:"scopes"`
	AccessTokenFormat      string   `yaml:"access_token_format"`
	IDTokenAlg             string   `yaml:"id_token_alg"`
	BackchannelLogoutURI   string   `yaml:"backchannel_logout_uri"`
	AllowedOrigins         []string `yaml:"allowed_origins"`
	// JWKS is the client's public key set (JSON) for private_key_jwt.
	JWKS string `yaml:"jwks"`
	// Claims adds claims from directory fields (username, name, email, mobile, ext.NAME) under
	// the profile scope, e.g. employee_no: ext.employee_no.
	Claims map[string]string `yaml:"claims"`
	// Enabled: false refuses the client's requests and revokes its tokens (default true).
	Enabled *bool `yaml:"enabled"`
	// LaunchURL, when set, puts the app in the portal a signed-in person sees: the app's own page
	// that starts its sign-in (OIDC initiate_login_uri).
	LaunchURL string `yaml:"launch_url"`
}

// ServiceProvider is a SAML SP declared in the file.
type ServiceProvider struct {
	EntityID      string            `yaml:"entity_id"`
	Name          string            `yaml:"name"`
	Metadata      string            `yaml:"metadata"`
	MetadataFile  string            `yaml:"metadata_file"`
	MetadataURL   string            `yaml:"metadata_url"`
	NameIDFormat  string            `yaml:"nameid_format"`
	Attributes    map[string]string `yaml:"attributes"`
	SignResponse  *bool             `yaml:"sign_response"`
	SignAssertion *bool             `yaml:"sign_assertion"`
	// Enabled: false refuses the SP's requests and ends its SAML sessions (default true).
	Enabled *bool `yaml:"enabled"`
}

// User is a user of the enterprise's own directory declared in the file (local source).
type User struct {
	Username     string `yaml:"username"`
	Name         string `yaml:"name"`
	Email        string `yaml:"email"`
	Mobile       string `yaml:"mobile"`
	PasswordHash string `yaml:"password_hash"` // argon2id PHC string
}

// Duration is a time.Duration written as "90s", "24h".
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler. A bad value is a type error at its line and column,
// which decode reports under the value's key.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: column %d: %q is not a duration like 90s, 30m or 24h", n.Line, n.Column, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Error is a configuration error naming the key at fault. Start-up exits with status 2 on it.
type Error struct {
	Key    string
	Reason string
}

func (e *Error) Error() string {
	if e.Key == "" {
		return "config: " + e.Reason
	}
	return "config: " + e.Key + ": " + e.Reason
}

// Default returns the embedded defaults: everything under ./data, SQLite, in-memory state.
func Default() *Config {
	return &Config{
		Listen:              "127.0.0.1:8080",
		DataDir:             "data",
		State:               "memory",
		KeyRotationGrace:    Duration(48 * time.Hour),
		ShutdownTimeout:     Duration(15 * time.Second),
		SyncRecordRetention: Duration(90 * 24 * time.Hour),
		EventMaxSkew:        Duration(5 * time.Minute),
		SessionIdle:         Duration(8 * time.Hour),
		SessionAbsolute:     Duration(24 * time.Hour),
		Log:                 Log{Level: "info", Format: "json"},
	}
}

// Overrides are command-line flags; empty fields are not set.
type Overrides struct {
	Listen  string
	DataDir string
}

// Load builds the configuration: defaults, then the file (if path is not empty), then env, then
// flags. It fills derived defaults and validates.
func Load(path string, env func(string) string, ov Overrides) (*Config, error) {
	c := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, &Error{Reason: fmt.Sprintf("cannot read %s: %v", path, err)}
		}
		if err := c.decode(b); err != nil {
			return nil, err
		}
		base := filepath.Dir(path)
		if err := c.resolveSecrets(base, env); err != nil {
			return nil, err
		}
		for i := range c.Enterprises {
			for j := range c.Enterprises[i].ServiceProviders {
				sp := &c.Enterprises[i].ServiceProviders[j]
				if sp.MetadataFile != "" && !filepath.IsAbs(sp.MetadataFile) {
					sp.MetadataFile = filepath.Join(base, sp.MetadataFile)
				}
			}
		}
	}
	if err := c.applyEnv(env); err != nil {
		return nil, err
	}
	if ov.Listen != "" {
		c.Listen = ov.Listen
	}
	if ov.DataDir != "" {
		c.DataDir = ov.DataDir
	}
	c.fillDerived()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

var (
	yamlFieldErr = regexp.MustCompile(`line (\d+): field (\S+) not found in type (\S+)`)
	yamlValueErr = regexp.MustCompile(`^line (\d+): (?:column (\d+): )?(.*)$`)
	// yamlTypeErr is the decoder's own complaint: "cannot unmarshal !!str `four` into int".
	yamlTypeErr = regexp.MustCompile("^cannot unmarshal !!(\\w+)(?: `(.*)`)? into (\\S+)$")
)

func (c *Config) decode(b []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is the defaults
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			keys := valueKeys(b)
			var reasons []string
			for _, e := range te.Errors {
				if m := yamlFieldErr.FindStringSubmatch(e); m != nil {
					reasons = append(reasons, fmt.Sprintf("unknown key %q (line %s, in %s)", m[2], m[1], sectionOf(m[3])))
					continue
				}
				// A bad value ("session_idle: 8 hours", "cycle_hours: four"): name its key.
				if m := yamlValueErr.FindStringSubmatch(e); m != nil {
					if k := keys.at(m[1], m[2], m[3]); k != "" {
						reason := m[3]
						if t := yamlTypeErr.FindStringSubmatch(reason); t != nil {
							if t[2] != "" {
								reason = fmt.Sprintf("%q is not %s", t[2], wantOf(t[3]))
							} else {
								reason = fmt.Sprintf("want %s, not %s", wantOf(t[3]), tagName(t[1]))
							}
						}
						reason += " (line " + m[1] + ")"
						if len(te.Errors) == 1 {
							return &Error{k, reason}
						}
						reasons = append(reasons, k+": "+reason)
						continue
					}
				}
				reasons = append(reasons, e)
			}
			return &Error{Reason: strings.Join(reasons, "; ")}
		}
		return &Error{Reason: "not valid YAML: " + err.Error()}
	}
	return nil
}

// tagName names a YAML tag the way the file's reader thinks of it.
func tagName(tag string) string {
	switch tag {
	case "seq":
		return "a list"
	case "map":
		return "a mapping"
	}
	return "a " + tag
}

// wantOf names a Go type the way the file's reader thinks of it.
func wantOf(goType string) string {
	switch {
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a mapping of key: value"
	case strings.Contains(goType, "int"):
		return "a whole number"
	case strings.Contains(goType, "bool"):
		return "true or false"
	case goType == "string":
		return "a text value"
	case strings.HasPrefix(goType, "config."):
		return "a section of keys"
	}
	return goType
}

// keyIndex finds the key of a value by where it stands in the file.
type keyIndex struct {
	byPos  map[[2]int]string
	byLine map[int][]keyedNode
}

type keyedNode struct {
	key, value string
	kind       yaml.Kind
}

// at returns the key of the value at line (and column, when known) that msg is about; "" when
// that is not one key.
func (k keyIndex) at(line, col, msg string) string {
	var l, c int
	fmt.Sscan(line, &l)
	if col != "" {
		fmt.Sscan(col, &c)
		if key, ok := k.byPos[[2]int{l, c}]; ok {
			return key
		}
	}
	nodes := k.byLine[l]
	if len(nodes) == 1 {
		return nodes[0].key
	}
	// Several on one line ({a: 1, b: x}, c: [1]): the scalar whose text the message quotes, or
	// the one list or mapping it names.
	var want yaml.Kind
	if t := yamlTypeErr.FindStringSubmatch(msg); t != nil {
		want = map[string]yaml.Kind{"seq": yaml.SequenceNode, "map": yaml.MappingNode}[t[1]]
	}
	found := ""
	for _, n := range nodes {
		if (n.kind == yaml.ScalarNode && strings.Contains(msg, "`"+n.value+"`")) || (want != 0 && n.kind == want) {
			if found != "" {
				return ""
			}
			found = n.key
		}
	}
	return found
}

// valueKeys indexes every value of the file by its position, with its key as errors spell it
// (enterprises[0].sources[1].sync.cycle_hours).
func valueKeys(b []byte) keyIndex {
	idx := keyIndex{byPos: map[[2]int]string{}, byLine: map[int][]keyedNode{}}
	var doc yaml.Node
	if yaml.Unmarshal(b, &doc) != nil {
		return idx
	}
	var walk func(n *yaml.Node, at string)
	walk = func(n *yaml.Node, at string) {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, at)
			}
			return
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i].Value
				if at != "" {
					k = at + "." + k
				}
				walk(n.Content[i+1], k)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", at, i))
			}
		}
		if at != "" {
			idx.byPos[[2]int{n.Line, n.Column}] = at
			idx.byLine[n.Line] = append(idx.byLine[n.Line], keyedNode{at, n.Value, n.Kind})
		}
	}
	walk(&doc, "")
	return idx
}

func sectionOf(goType string) string {
	switch strings.TrimPrefix(goType, "config.") {
	case "Config":
		return "the top level"
	case "Enterprise":
		return "an enterprise"
	case "Source":
		return "a source"
	case "Sync":
		return "a source's sync section"
	case "Client":
		return "a client"
	case "ServiceProvider":
		return "a service provider"
	case "User":
		return "a user"
	case "Admin":
		return "an admin"
	case "Log":
		return "log"
	}
	return goType
}

// Env names the environment variables Load reads, each overriding one key.
var Env = map[string]string{
	"QIAO_LISTEN":       "listen",
	"QIAO_ADDR":         "listen",
	"QIAO_EXTERNAL_URL": "external_url",
	"QIAO_DATA":         "data_dir",
	"QIAO_STORAGE":      "storage",
	"QIAO_STATE":        "state",
	"QIAO_KEYS_DIR":     "keys_dir",
	"QIAO_MASTER_KEY":   "master_key",
	"QIAO_LOG_LEVEL":    "log.level",
	"QIAO_LOG_FORMAT":   "log.format",
}

func (c *Config) applyEnv(env func(string) string) error {
	if env == nil {
		return nil
	}
	set := map[string]*string{
		"listen": &c.Listen, "external_url": &c.ExternalURL, "data_dir": &c.DataDir, "storage": &c.Storage,
		"state": &c.State, "keys_dir": &c.KeysDir, "master_key": &c.MasterKey, "log.level": &c.Log.Level, "log.format": &c.Log.Format,
	}
	// QIAO_ADDR is applied after QIAO_LISTEN so the documented short name wins.
	for _, name := range []string{"QIAO_LISTEN", "QIAO_ADDR", "QIAO_EXTERNAL_URL", "QIAO_DATA", "QIAO_STORAGE", "QIAO_STATE", "QIAO_KEYS_DIR", "QIAO_MASTER_KEY", "QIAO_LOG_LEVEL", "QIAO_LOG_FORMAT"} {
		if v := env(name); v != "" {
			*set[Env[name]] = v
		}
	}
	return nil
}

func (c *Config) fillDerived() {
	if c.Storage == "" {
		c.Storage = "sqlite://" + filepath.Join(c.DataDir, "qiao.db")
	}
	if c.KeysDir == "" {
		c.KeysDir = filepath.Join(c.DataDir, "keys")
	}
	if c.ExternalURL == "" {
		c.ExternalURL = "http://" + c.Listen
		c.externalFromListen = true
	}
	c.ExternalURL = strings.TrimRight(c.ExternalURL, "/")
}

var levelNames = map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}

// LogLevel returns the configured level.
func (c *Config) LogLevel() slog.Level { return levelNames[strings.ToLower(c.Log.Level)] }

// Validate checks every value and returns the first problem as an *Error.
func (c *Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return &Error{"listen", fmt.Sprintf("%q is not HOST:PORT", c.Listen)}
	}
	u, err := url.Parse(c.ExternalURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return &Error{"external_url", fmt.Sprintf("%q must be an absolute http(s) URL without query or fragment", c.ExternalURL)}
	}
	if !strings.HasPrefix(c.Storage, "sqlite:") && !strings.HasPrefix(c.Storage, "postgres://") && !strings.HasPrefix(c.Storage, "postgresql://") {
		return &Error{"storage", "must be sqlite://PATH or postgres://USER@HOST:PORT/DB"}
	}
	if c.State != "memory" && !strings.HasPrefix(c.State, "redis://") && !strings.HasPrefix(c.State, "rediss://") {
		return &Error{"state", fmt.Sprintf("%q must be memory or redis://HOST:PORT/DB", c.State)}
	}
	if _, ok := levelNames[strings.ToLower(c.Log.Level)]; !ok {
		return &Error{"log.level", fmt.Sprintf("%q must be debug, info, warn or error", c.Log.Level)}
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		return &Error{"log.format", fmt.Sprintf("%q must be json or text", c.Log.Format)}
	}
	if c.KeyRotationGrace.D() < time.Hour {
		return &Error{"key_rotation_grace", "must be at least 1h (tokens signed by the old key must stay verifiable)"}
	}
	if c.SyncRecordRetention.D() < time.Hour {
		return &Error{"sync_record_retention", "must be at least 1h (e.g. 2160h for 90 days)"}
	}
	if c.EventMaxSkew.D() < 10*time.Second || c.EventMaxSkew.D() > time.Hour {
		return &Error{"event_max_skew", "must be between 10s and 1h"}
	}
	if c.SessionIdle.D() < time.Minute || c.SessionAbsolute.D() < c.SessionIdle.D() {
		return &Error{"session_idle", "must be at least 1m and no longer than session_absolute"}
	}
	if c.ShutdownTimeout.D() <= 0 {
		return &Error{"shutdown_timeout", "must be positive"}
	}
	if c.DrainDelay.D() < 0 || c.DrainDelay.D() > time.Minute {
		return &Error{"drain_delay", "must be between 0 and 1m"}
	}
	for i, cidr := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			return &Error{fmt.Sprintf("trusted_proxies[%d]", i), fmt.Sprintf("%q is not a CIDR like 10.0.0.0/8", cidr)}
		}
	}
	seenEnt := map[string]bool{}
	for i, e := range c.Enterprises {
		if err := e.validate(fmt.Sprintf("enterprises[%d]", i)); err != nil {
			return err
		}
		if seenEnt[e.ID] {
			return &Error{fmt.Sprintf("enterprises[%d].id", i), fmt.Sprintf("enterprise %q declared twice", e.ID)}
		}
		seenEnt[e.ID] = true
	}
	return nil
}

func (e *Enterprise) validate(at string) error {
	if !directory.ValidID(e.ID) {
		return &Error{at + ".id", fmt.Sprintf("%q must be 1-63 lowercase letters, digits, '-' or '_'", e.ID)}
	}
	seen := map[string]bool{}
	for j, s := range e.Sources {
		key := fmt.Sprintf("%s.sources[%d]", at, j)
		if !directory.ValidID(s.ID) {
			return &Error{key + ".id", fmt.Sprintf("%q must be 1-63 lowercase letters, digits, '-' or '_'", s.ID)}
		}
		if seen[s.ID] {
			return &Error{key + ".id", fmt.Sprintf("source %q declared twice", s.ID)}
		}
		seen[s.ID] = true
		check, ok := sourceKind(s.Kind)
		if !ok {
			return &Error{key + ".kind", fmt.Sprintf("%q must be %s", s.Kind, kindList())}
		}
		// The directory's own rules, so that config and store never disagree on what is valid.
		if err := s.Sync.settings().Validate(directory.SourceKind(s.Kind)); err != nil {
			var fe *directory.FieldError
			if errors.As(err, &fe) {
				return &Error{key + "." + syncKeys.Replace(fe.Field), fe.Reason}
			}
			return &Error{key + ".sync", err.Error()}
		}
		if check != nil {
			if err := check(s.Config, s.Secrets); err != nil {
				var ce *Error
				if errors.As(err, &ce) {
					return &Error{key + "." + ce.Key, ce.Reason}
				}
				return &Error{key, err.Error()}
			}
		}
	}
	if err := e.Provisioning.validate(at+".provisioning", e); err != nil {
		return err
	}
	seen = map[string]bool{}
	for j, cl := range e.Clients {
		key := fmt.Sprintf("%s.clients[%d]", at, j)
		if !directory.ValidID(cl.ID) {
			return &Error{key + ".id", fmt.Sprintf("%q must be 1-63 lowercase letters, digits, '-' or '_'", cl.ID)}
		}
		if seen[cl.ID] {
			return &Error{key + ".id", fmt.Sprintf("client %q declared twice", cl.ID)}
		}
		seen[cl.ID] = true
		switch cl.Type {
		case "native", "web", "service":
		default:
			return &Error{key + ".type", fmt.Sprintf("%q must be native, web or service", cl.Type)}
		}
		if cl.Type != "native" && cl.Secret == "" && cl.AuthMethod != "private_key_jwt" {
			return &Error{key + ".secret", "a " + cl.Type + " client needs a secret"}
		}
		switch cl.AuthMethod {
		case "", "client_secret_basic", "client_secret_post", "private_key_jwt":
		case "none":
			if cl.Type != "native" {
				return &Error{key + ".auth_method", "only a native client authenticates with none"}
			}
		default:
			return &Error{key + ".auth_method", fmt.Sprintf("%q must be none, client_secret_basic, client_secret_post or private_key_jwt", cl.AuthMethod)}
		}
		if cl.AuthMethod == "private_key_jwt" {
			var set struct {
				Keys []json.RawMessage `json:"keys"`
			}
			if err := json.Unmarshal([]byte(cl.JWKS), &set); err != nil || len(set.Keys) == 0 {
				return &Error{key + ".jwks", "a private_key_jwt client needs its public keys as a JSON Web Key Set"}
			}
		}
		switch cl.IDTokenAlg {
		case "", "RS256", "ES256", "EdDSA":
		default:
			return &Error{key + ".id_token_alg", fmt.Sprintf("%q must be RS256, ES256 or EdDSA", cl.IDTokenAlg)}
		}
		switch cl.AccessTokenFormat {
		case "", "opaque", "jwt":
		default:
			return &Error{key + ".access_token_format", fmt.Sprintf("%q must be opaque or jwt", cl.AccessTokenFormat)}
		}
		for k, ru := range cl.RedirectURIs {
			if u, err := url.Parse(ru); err != nil || u.Scheme == "" || u.Fragment != "" {
				return &Error{fmt.Sprintf("%s.redirect_uris[%d]", key, k), fmt.Sprintf("%q must be an absolute URI without a fragment", ru)}
			}
		}
	}
	for j, sp := range e.ServiceProviders {
		key := fmt.Sprintf("%s.service_providers[%d]", at, j)
		n := 0
		for _, v := range []string{sp.Metadata, sp.MetadataFile, sp.MetadataURL} {
			if v != "" {
				n++
			}
		}
		if n != 1 {
			return &Error{key, "give exactly one of metadata, metadata_file or metadata_url"}
		}
		if strings.TrimSpace(sp.EntityID) == "" {
			return &Error{key + ".entity_id", "required: the SP's entity ID, as its metadata says"}
		}
		if sp.MetadataURL != "" {
			if u, err := url.Parse(sp.MetadataURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return &Error{key + ".metadata_url", fmt.Sprintf("%q must be an http(s) URL", sp.MetadataURL)}
			}
		}
		switch sp.NameIDFormat {
		case "", "persistent", "emailAddress", "unspecified", "transient":
		default:
			return &Error{key + ".nameid_format", fmt.Sprintf("%q must be persistent, emailAddress, unspecified or transient", sp.NameIDFormat)}
		}
		for name, field := range sp.Attributes {
			switch {
			case field == "id", field == "username", field == "name", field == "email", field == "mobile", field == "departments",
				field == "groups", field == "enterprise", strings.HasPrefix(field, "ext.") && len(field) > 4:
			default:
				return &Error{key + ".attributes." + name, fmt.Sprintf("%q must be id, username, name, email, mobile, departments, groups, enterprise or ext.NAME", field)}
			}
		}
	}
	for j, u := range e.Users {
		if u.Username == "" {
			return &Error{fmt.Sprintf("%s.users[%d].username", at, j), "required"}
		}
	}
	seen = map[string]bool{}
	for j, a := range e.Admins {
		key := fmt.Sprintf("%s.admins[%d]", at, j)
		if strings.TrimSpace(a.User) == "" {
			return &Error{key + ".user", "required: the username of a person of the enterprise's directory"}
		}
		if seen[a.User] {
			return &Error{key + ".user", fmt.Sprintf("%q is granted twice", a.User)}
		}
		seen[a.User] = true
		if !directory.AdminRole(a.Role).Valid() {
			return &Error{key + ".role", fmt.Sprintf("%q must be owner, admin or auditor", a.Role)}
		}
	}
	return nil
}

// ExternalURLSet reports whether the external URL was set (file, QIAO_EXTERNAL_URL) rather than
// derived from listen.
func (c *Config) ExternalURLSet() bool { return !c.externalFromListen }

// CheckExternalURL refuses an external URL no browser or platform can reach: one whose host is
// unspecified (0.0.0.0, ::), which is an address to listen on, not one to be reached at. It
// happens when listen is 0.0.0.0:PORT (as in a container) and no external URL is set. Serving
// with it would publish issuers and callbacks at http://0.0.0.0:PORT.
func (c *Config) CheckExternalURL() error {
	u, err := url.Parse(c.ExternalURL)
	if err != nil {
		return &Error{"external_url", fmt.Sprintf("%q is not a URL", c.ExternalURL)}
	}
	ip := net.ParseIP(u.Hostname())
	if u.Hostname() != "" && (ip == nil || !ip.IsUnspecified()) {
		return nil
	}
	reason := fmt.Sprintf("%s has the unspecified host %s, which no browser or platform can reach", c.ExternalURL, u.Hostname())
	if c.externalFromListen {
		reason = fmt.Sprintf("not set, and http://{listen} is %s, which no browser or platform can reach", c.ExternalURL)
	}
	return &Error{"external_url", reason + ": set external_url or QIAO_EXTERNAL_URL to the URL people reach the gateway at, e.g. https://sso.example.com"}
}

// RedactDSN hides the password of a DSN (storage or state) for logs and error messages.
func RedactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
