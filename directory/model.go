// Package directory is qiao's domain model — enterprises, identity sources, departments, users,
// groups, OIDC clients, SAML service providers, sync records and audit events — and the Store
// interface every durable backend implements.
package directory

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"
)

// Errors a Store returns; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("already exists")
	// ErrLimit is returned when a write would break a documented limit (for example a sixth
	// enabled identity source).
	ErrLimit = errors.New("limit exceeded")
)

// Enterprise is a tenant: the thing whose ID the SASE client asks for first.
type Enterprise struct {
	ID        string
	Name      string
	Managed   string // ManagedByConfig when config.yaml declares it
	CreatedAt time.Time
	UpdatedAt time.Time
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidID reports whether s can be an enterprise, source or client ID: it appears in URL paths
// admins paste into platform consoles, so it stays lowercase ASCII.
func ValidID(s string) bool { return idPattern.MatchString(s) }

// SourceKind names what is behind an identity source: KindLocal, the enterprise's own directory,
// or a platform whose connector registers its kind with federation (federation/connectors links
// them). Which platform kinds exist is the registry's to say, above the directory: the config is
// checked against it when it loads, and a stored source of a kind this build does not link opens
// no connector, so it neither syncs nor logs anyone on.
type SourceKind string

// KindLocal is the directory's own kind: password logon against the users it holds.
const KindLocal SourceKind = "local"

// The platform kinds qiao links today, named for the code and tests that pick one; what they do
// is their registered kind's.
const (
	KindWeCom    SourceKind = "wecom"
	KindDingTalk SourceKind = "dingtalk"
)

var kindPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Valid reports whether k can be a kind: local, or a platform kind's name.
func (k SourceKind) Valid() bool { return k == KindLocal || kindPattern.MatchString(string(k)) }

// Limits on identity sources from the platforms' admin guides.
const (
	MaxEnabledSources        = 5
	MaxEnabledCustomSources  = 1
	DefaultDeleteUserLimit   = 30
	DefaultDeleteDeptLimit   = 10
	DefaultSyncCycleHours    = 24
	MinSyncCycleHours        = 1
	MaxSyncCycleHours        = 24
	DefaultRecordRetention   = 90 * 24 * time.Hour
	maxSourceNameRunes       = 100
	minSourceNameRunes       = 2
	maxSourceDescriptionRune = 200
)

// sourceNamePattern: Chinese characters, letters, digits, '-' and '_' (the admin guides' rule).
var sourceNamePattern = regexp.MustCompile(`^[\p{Han}A-Za-z0-9_-]+$`)

// IdentitySource is one upstream directory and login method of an enterprise.
type IdentitySource struct {
	EnterpriseID string
	ID           string
	Kind         SourceKind
	Name         string
	Description  string // shown as the logon title
	Enabled      bool   // false = closed: no logon through it
	// Authoritative says whether leaving this source means leaving the enterprise: a person whose
	// link to an authoritative source is removed departs entirely, whatever other sources still
	// know them. nil means the kind's default (IsAuthoritative).
	Authoritative *bool
	// Managed names who owns the object: ManagedByConfig when config.yaml declares it (removing it
	// from the file deletes it), "" when it was created another way (the admin API).
	Managed string
	Sync    SyncSettings
	// Config holds the kind's non-secret settings (corp ID, agent ID, API base URLs, proxies,
	// callback domain, edition ...). Its shape belongs to the connector of that kind.
	Config map[string]string
	// Secrets holds the kind's secret settings (app secret, contact-sync secret, callback token
	// and AES key, proxy passwords). Stored encrypted; never returned by the API.
	Secrets   map[string]string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ManagedByConfig marks an object config.yaml declares: the file owns it.
const ManagedByConfig = "config"

// IsAuthoritative reports whether leaving src means departing entirely: as set, or by default
// true for a platform (WeCom, DingTalk: the company's own record of who works there) and false
// for the local directory.
func IsAuthoritative(src *IdentitySource) bool {
	if src.Authoritative != nil {
		return *src.Authoritative
	}
	return src.Kind != KindLocal
}

// SyncSettings is how and what a source synchronizes.
type SyncSettings struct {
	Auto           bool           `json:"auto"`           // automatic synchronization
	UserInfo       bool           `json:"user_info"`      // synchronize user information (off: structure only)
	CycleHours     int            `json:"cycle_hours"`    // 1..24
	VerifyAt       string         `json:"verify_at"`      // daily scheduled verification, "HH:MM" local time; empty = off
	ScopeAll       bool           `json:"scope_all"`      // Synchronize All
	ScopeDeptIDs   []string       `json:"scope_dept_ids"` // Partially Synchronize: upstream department IDs of the chosen subtrees
	MatchBy        string         `json:"match_by"`       // userid (default), email or mobile
	DeleteUsers    int            `json:"delete_users"`   // cancel a task deleting more users than this
	DeleteDepts    int            `json:"delete_depts"`   // ... or more departments than this
	FieldMappings  []FieldMapping `json:"field_mappings,omitempty"`
	ExtendedFields []string       `json:"extended_fields,omitempty"` // names of extended user fields this source fills
}

// FieldMapping maps an upstream attribute to a local field or an extended field ("ext.NAME").
type FieldMapping struct {
	Upstream string `json:"upstream"`
	Local    string `json:"local"`
}

// DefaultSyncSettings are the settings of a new source.
func DefaultSyncSettings() SyncSettings {
	return SyncSettings{
		Auto: true, UserInfo: true, CycleHours: DefaultSyncCycleHours, ScopeAll: true,
		MatchBy: "userid", DeleteUsers: DefaultDeleteUserLimit, DeleteDepts: DefaultDeleteDeptLimit,
	}
}

// FieldError is a validation failure of one named field.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Validate checks the source against the admin guides' rules.
func (s *IdentitySource) Validate() error {
	if !ValidID(s.EnterpriseID) {
		return &FieldError{"enterprise_id", "must be 1-63 lowercase letters, digits, '-' or '_'"}
	}
	if !ValidID(s.ID) {
		return &FieldError{"id", "must be 1-63 lowercase letters, digits, '-' or '_'"}
	}
	if !s.Kind.Valid() {
		return &FieldError{"kind", fmt.Sprintf("%q is not a kind: local, or a platform's (lowercase letters, digits and '_')", s.Kind)}
	}
	n := utf8.RuneCountInString(s.Name)
	if n < minSourceNameRunes || n > maxSourceNameRunes || !sourceNamePattern.MatchString(s.Name) {
		return &FieldError{"name", "must be 2-100 characters: Chinese characters, letters, digits, '-' or '_'"}
	}
	if utf8.RuneCountInString(s.Description) > maxSourceDescriptionRune {
		return &FieldError{"description", "must be at most 200 characters"}
	}
	return s.Sync.Validate(s.Kind)
}

// Validate checks a source's synchronization settings (the admin guides' rules). Its FieldError
// names the field under "sync."; internal/config reports the same rules against its own keys.
func (s SyncSettings) Validate(kind SourceKind) error {
	if c := s.CycleHours; c < MinSyncCycleHours || c > MaxSyncCycleHours {
		return &FieldError{"sync.cycle_hours", "must be between 1 and 24"}
	}
	if v := s.VerifyAt; v != "" {
		if _, err := time.Parse("15:04", v); err != nil {
			return &FieldError{"sync.verify_at", "must be a time of day like 03:30"}
		}
	}
	switch s.MatchBy {
	case "userid", "email", "mobile":
	default:
		return &FieldError{"sync.match_by", "must be userid, email or mobile"}
	}
	if s.DeleteUsers < 0 {
		return &FieldError{"sync.delete_users", "deletion thresholds must not be negative"}
	}
	if s.DeleteDepts < 0 {
		return &FieldError{"sync.delete_depts", "deletion thresholds must not be negative"}
	}
	if !s.ScopeAll && len(s.ScopeDeptIDs) == 0 && kind != KindLocal {
		return &FieldError{"sync.scope_dept_ids", "partial synchronization needs at least one department"}
	}
	return nil
}

// Department is a node of a source's org chart.
type Department struct {
	EnterpriseID string
	SourceID     string
	UpstreamID   string // WeCom/DingTalk department id; root is "1"
	ParentID     string // upstream ID of the parent; "" for the root
	Name         string
	Order        int64
	Extra        json.RawMessage // upstream fields qiao keeps but does not model
	UpdatedAt    time.Time
}

// UserStatus is a directory user's state. Only active users can log on.
type UserStatus string

// User statuses; the platforms' own states map onto these.
const (
	UserActive   UserStatus = "active"
	UserDisabled UserStatus = "disabled"
	UserInactive UserStatus = "inactive" // not activated yet
	UserDeparted UserStatus = "departed" // exited the corp or removed upstream
)

// User is a person in an enterprise's directory. ID is stable for the user's life: it is the OIDC
// sub and the SAML persistent NameID.
type User struct {
	ID           string
	EnterpriseID string
	Username     string // unique within the enterprise
	Name         string
	Email        string
	Mobile       string
	Status       UserStatus
	PasswordHash string            // argon2id PHC string, for local password logon; never returned by the API
	Attributes   map[string]string // extended fields
	Managed      string            // ManagedByConfig for a local user config.yaml declares
	// DepartedBy names the authoritative source whose removal of the person made them depart while
	// other sources still link them: those sources' syncs keep them departed; only that source
	// linking them again (a rehire) brings them back.
	DepartedBy string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// UserLink ties a directory user to their identity at one source.
type UserLink struct {
	EnterpriseID string
	SourceID     string
	UpstreamID   string // WeCom userid, DingTalk userid
	UnionID      string // DingTalk unionid, when known
	UserID       string
	Departments  []string        // upstream department IDs
	Upstream     json.RawMessage // the upstream record as last read
	UpdatedAt    time.Time
	// SyncHash is the sync's fingerprint of what it last wrote (dirsync); empty when anything
	// else wrote the link, which makes the next sync compare the person field by field.
	SyncHash string
	// Staged, with Upstream nil: the upstream record is the one staged for a sync task
	// (Store.StageUpstream).
	Staged StagedRef
}

// Group is a named set of users within an enterprise.
type Group struct {
	EnterpriseID string
	ID           string
	Name         string
	Description  string
	Members      []string // user IDs
}

// ClientType is what kind of relying party an OIDC client is.
type ClientType string

// Client types.
const (
	ClientNative  ClientType = "native"  // public app, PKCE, loopback or custom-scheme redirects
	ClientWeb     ClientType = "web"     // confidential web app
	ClientService ClientType = "service" // client_credentials only
)

// OIDCClient is a relying party of one enterprise's OpenID Provider.
type OIDCClient struct {
	EnterpriseID           string
	ID                     string
	Name                   string
	Type                   ClientType
	Secret                 string // encrypted at rest; never returned by the API
	AuthMethod             string // none, client_secret_basic, client_secret_post, private_key_jwt
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string
	AccessTokenFormat      string // opaque or jwt
	IDTokenAlg             string // RS256, ES256 or EdDSA
	BackchannelLogoutURI   string
	AllowedOrigins         []string
	JWKS                   json.RawMessage // public keys for private_key_jwt
	// Claims maps extra claim names to directory fields ("ext.NAME" for an extended field); they
	// are released with the profile scope.
	Claims map[string]string
	// LaunchURL is where the portal opens the app (its initiate_login_uri); "" keeps it out.
	LaunchURL string
	// Disabled refuses the client's requests and ends what it holds (config: enabled: false).
	Disabled  bool
	Managed   string // ManagedByConfig when config.yaml declares it
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ServiceProvider is a SAML SP of one enterprise's IdP.
type ServiceProvider struct {
	EnterpriseID  string
	EntityID      string
	Name          string
	MetadataXML   string
	MetadataURL   string
	NameIDFormat  string            // persistent, emailAddress, unspecified, transient
	Attributes    map[string]string // SAML attribute name -> directory field
	SignResponse  bool
	SignAssertion bool
	// Disabled refuses the SP's requests and ends its SAML sessions (config: enabled: false).
	Disabled  bool
	Managed   string // ManagedByConfig when config.yaml declares it
	CreatedAt time.Time
	UpdatedAt time.Time
}

// RefreshToken is a stored OIDC refresh token. Only the token's hash is stored.
type RefreshToken struct {
	ID           string // SHA-256 of the token value, hex
	FamilyID     string // every rotation of one grant shares a family; reuse revokes it
	EnterpriseID string
	ClientID     string
	UserID       string
	Scopes       []string
	AMR          []string
	AuthTime     time.Time
	ExpiresAt    time.Time
	CreatedAt    time.Time
	RotatedAt    time.Time // zero until used; a rotated token presented again is reuse
	RevokedAt    time.Time
	SourceID     string // the identity source the grant's login went through
	SessionID    string // the sid of the SSO session the grant began in
}

// Trigger says what started a sync task.
type Trigger string

// Sync task triggers.
const (
	TriggerManual   Trigger = "manual"
	TriggerSchedule Trigger = "schedule"
	TriggerVerify   Trigger = "verification"
	TriggerEvent    Trigger = "event"
	// TriggerConsent: a login disclosed fields with the person's consent (WeCom
	// snsapi_privateinfo) and the directory kept them.
	TriggerConsent Trigger = "consent"
)

// TaskStatus is a sync task's state.
type TaskStatus string

// Sync task states.
const (
	TaskRunning   TaskStatus = "running"
	TaskSucceeded TaskStatus = "succeeded"
	TaskFailed    TaskStatus = "failed"
	TaskCancelled TaskStatus = "cancelled" // e.g. deletion protection tripped
)

// SyncTask is one run of a source's synchronization.
type SyncTask struct {
	ID           string
	EnterpriseID string
	SourceID     string
	Trigger      Trigger
	Status       TaskStatus
	DryRun       bool
	ReadMode     string         // how the upstream was read, e.g. "list_id+get"
	Counts       map[string]int // by action: create, update, move, delete, unchanged, skip, error
	Reason       string         // why it failed or was cancelled
	StartedAt    time.Time
	FinishedAt   time.Time
}

// SyncRecord is what a task did to one object.
type SyncRecord struct {
	ID          int64
	TaskID      string
	ObjectType  string // user or department
	UpstreamID  string
	Action      string // create, update, move, delete, unchanged, skip, error
	Upstream    json.RawMessage
	LocalBefore json.RawMessage
	LocalAfter  json.RawMessage
	Error       string
	CreatedAt   time.Time
	// Staged, with Upstream nil: the upstream record is the one staged for the task
	// (Store.StageUpstream).
	Staged StagedRef
}

// StagedRef names an upstream record a sync task staged in the store: the task and the number
// the task gave the record. The zero value names none.
type StagedRef struct {
	Task string
	Seq  int64
}

// AuditEvent is a security-relevant event: a login, an admin change, a revocation.
type AuditEvent struct {
	ID           int64
	At           time.Time
	EnterpriseID string
	Kind         string // e.g. login.success, login.failure, source.update
	Actor        string
	UserID       string
	SourceID     string
	IP           string
	UserAgent    string
	Outcome      string
	Reason       string
	RequestID    string
	Detail       json.RawMessage
}

// SourceEvent is an upstream event in the durable inbox.
type SourceEvent struct {
	ID           int64
	EnterpriseID string
	SourceID     string
	DedupeKey    string // a repeated delivery has the same key
	EventType    string
	Payload      json.RawMessage // the decrypted event, normalised by the connector
	ReceivedAt   time.Time
	Status       string // pending, applied, failed
	Attempts     int
	AppliedAt    time.Time
	TaskID       string
	Error        string
}

// AccessJob is work the access lifecycle owes after a change that ended access: written in the
// change's transaction, claimed and run by one replica (ending sessions and tokens, telling the
// relying parties, auditing the count).
type AccessJob struct {
	ID           int64
	EnterpriseID string
	Kind         string // one of the Job* kinds
	Object       string // the source ID, client ID or SP entity ID
	Actor        string // who made the change: "config", "cli", an administrator
	Reason       string
	Payload      json.RawMessage // kind-specific: the users a source deletion departed or unlinked
	CreatedAt    time.Time
	Status       string // pending, done, failed (EventPending, EventApplied, EventFailed)
	Attempts     int
	FinishedAt   time.Time
	Result       json.RawMessage // the counts the job ended
	Error        string
}

// Access job kinds.
const (
	JobSourceClosed   = "source.closed"
	JobSourceDeleted  = "source.deleted"
	JobClientDisabled = "client.disabled"
	JobClientDeleted  = "client.deleted"
	JobSPDisabled     = "sp.disabled"
	JobSPDeleted      = "sp.deleted"
	JobUsersDeparted  = "users.departed"   // people removed outright (config file, enterprise deleted)
	JobUserLeftSource = "user.left_source" // a person unlinked from a source others still link them through
)

// Event inbox states.
const (
	EventPending = "pending"
	EventApplied = "applied"
	EventFailed  = "failed"
)
