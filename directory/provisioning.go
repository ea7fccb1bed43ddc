package directory

import (
	"context"
	"encoding/json"
	"time"
)

// ProvisionTarget is where an enterprise's directory is pushed (outbound provisioning): one per
// enterprise, of a platform kind whose connector can write (WeCom).
type ProvisionTarget struct {
	EnterpriseID string
	Kind         SourceKind
	Enabled      bool
	// AutoPush: every change is pushed as it happens (the outbox); off, only reconciles push.
	AutoPush bool
	Settings ProvisionSettings
	// Config holds the connector's non-secret settings (corp_id, api_base_url, proxies,
	// proxy_username, rate_limit).
	Config map[string]string
	// Secrets holds contact_secret and proxy_password. Stored encrypted; never returned.
	Secrets   map[string]string
	Managed   string // ManagedByConfig when config.yaml declares it
	CreatedAt time.Time
	UpdatedAt time.Time
}

// What a target pushes.
const (
	ProvisionScopeAll         = "all"         // every source but those of the target's own organisation
	ProvisionScopeSources     = "sources"     // the people and departments of the chosen sources
	ProvisionScopeDepartments = "departments" // the chosen department subtrees and their people
)

// ProvisionSettings are a target's behaviour.
type ProvisionSettings struct {
	// RootDepartment is the target's department under which qiao's organisation is created.
	RootDepartment string `json:"root_department"`
	// DefaultDepartment, when set, is where every pushed person is placed instead of their mapped
	// departments.
	DefaultDepartment string `json:"default_department,omitempty"`
	Scope             string `json:"scope"`
	// Sources are source IDs (scope sources); Departments are "SOURCE/UPSTREAM_ID" subtrees
	// (scope departments).
	Sources     []string `json:"sources,omitempty"`
	Departments []string `json:"departments,omitempty"`
	// UserIDField is the local field that becomes the target's userid: username (default),
	// email_local (the part of the email before @), mobile, or ext.NAME.
	UserIDField string `json:"userid_field"`
	// FieldMap maps the target's fields (name, mobile, email, position, gender, telephone,
	// alias, ext.NAME) to local fields (name, email, mobile, username, ext.NAME); absent fields
	// take their defaults (name, email, mobile).
	FieldMap map[string]string `json:"field_map,omitempty"`
	// Departure is what a departed person becomes: delete (default) or disable.
	Departure string `json:"departure"`
	// CycleHours is the full reconcile's period (0: none scheduled).
	CycleHours int `json:"cycle_hours"`
	// DeleteUsers and DeleteDepts cancel a reconcile that would delete more.
	DeleteUsers int `json:"delete_users"`
	DeleteDepts int `json:"delete_depts"`
}

// DefaultProvisionSettings are a new target's.
func DefaultProvisionSettings() ProvisionSettings {
	return ProvisionSettings{RootDepartment: "1", Scope: ProvisionScopeAll, UserIDField: "username", Departure: "delete",
		DeleteUsers: DefaultDeleteUserLimit, DeleteDepts: DefaultDeleteDeptLimit}
}

// Provisioned object types and outbox states.
const (
	ProvisionUser       = "user"
	ProvisionDepartment = "department"
	OutboxPending       = "pending"
	OutboxParked        = "parked"
	// ProvisionCreating marks an object whose create was sent but not yet answered.
	ProvisionCreating = "creating"
	ProvisionPresent  = "present"
)

// OutboxItem is one change waiting to be pushed: the object it names (a user ID, or
// "SOURCE/UPSTREAM_ID" for a department), read as it is when pushed.
type OutboxItem struct {
	ID           int64
	EnterpriseID string
	ObjectType   string
	ObjectKey    string
	CreatedAt    time.Time
	Status       string // OutboxPending or OutboxParked
	Attempts     int
	NextAt       time.Time
	ErrCode      int
	Error        string
}

// ProvisionedObject is an object qiao created (or adopted) at the target.
type ProvisionedObject struct {
	EnterpriseID string
	ObjectType   string
	LocalKey     string
	RemoteID     string // the target's userid or department ID ("" while creating a department)
	State        string // ProvisionCreating or ProvisionPresent
	Pushed       json.RawMessage
	UpdatedAt    time.Time
}

// ProvisionTask is a reconcile (or a batch of incremental pushes, trigger "push").
type ProvisionTask struct {
	ID           string
	EnterpriseID string
	Trigger      string // push, manual, schedule
	Status       TaskStatus
	DryRun       bool
	Counts       map[string]int
	Reason       string
	Calls        int64
	StartedAt    time.Time
	FinishedAt   time.Time
}

// ProvisionRecord is what a push did to one object.
type ProvisionRecord struct {
	ID           int64
	EnterpriseID string
	TaskID       string
	ObjectType   string
	LocalKey     string
	RemoteID     string
	Action       string // create, update, move, delete, disable, unchanged, skip, error, parked, planned-*
	Local        json.RawMessage
	Before       json.RawMessage
	After        json.RawMessage
	ErrCode      int
	Error        string
	CreatedAt    time.Time
}

// ProvisionRecordQuery selects records, newest first.
type ProvisionRecordQuery struct {
	EnterpriseID string
	TaskID       string // optional
	BeforeID     int64  // paging
	Limit        int
}

// ProvisionStore is the durable state of outbound provisioning. The SQL store implements it (a
// Store returned by InTx too); the outbox rows are written by triggers on the directory's tables.
type ProvisionStore interface {
	PutProvisionTarget(ctx context.Context, t *ProvisionTarget) error
	GetProvisionTarget(ctx context.Context, enterpriseID string) (*ProvisionTarget, error)
	ListProvisionTargets(ctx context.Context) ([]*ProvisionTarget, error)
	DeleteProvisionTarget(ctx context.Context, enterpriseID string) error

	// AddOutboxItem queues an object by hand (a reconcile of one object, tests).
	AddOutboxItem(ctx context.Context, enterpriseID, objectType, key string) error
	// ClaimOutbox claims up to limit pending items due at now whose claim expired, oldest first,
	// until claimUntil: of workers claiming together, each item goes to one.
	ClaimOutbox(ctx context.Context, now, claimUntil time.Time, limit int) ([]*OutboxItem, error)
	// DoneOutbox removes pushed items, and the parked items of the same objects up to maxID.
	DoneOutbox(ctx context.Context, items []*OutboxItem) error
	// RetryOutbox stores an item's attempts, next try, status (pending or parked) and error, and
	// releases its claim.
	RetryOutbox(ctx context.Context, it *OutboxItem) error
	// ListOutbox lists an enterprise's items of a status, oldest first.
	ListOutbox(ctx context.Context, enterpriseID, status string, limit int) ([]*OutboxItem, error)
	// CountOutbox counts an enterprise's items by status.
	CountOutbox(ctx context.Context, enterpriseID string) (map[string]int, error)

	PutProvisionedObject(ctx context.Context, o *ProvisionedObject) error
	GetProvisionedObject(ctx context.Context, enterpriseID, objectType, localKey string) (*ProvisionedObject, error)
	ListProvisionedObjects(ctx context.Context, enterpriseID, objectType string) ([]*ProvisionedObject, error)
	DeleteProvisionedObject(ctx context.Context, enterpriseID, objectType, localKey string) error

	CreateProvisionTask(ctx context.Context, t *ProvisionTask) error
	FinishProvisionTask(ctx context.Context, t *ProvisionTask) error
	// InterruptProvisionTasks fails the enterprise's tasks still marked running whose process
	// died; the caller holds the enterprise's push lock, so none can still be running. It
	// returns how many.
	InterruptProvisionTasks(ctx context.Context, enterpriseID string, at time.Time, reason string) (int, error)
	GetProvisionTask(ctx context.Context, id string) (*ProvisionTask, error)
	ListProvisionTasks(ctx context.Context, enterpriseID string, limit int) ([]*ProvisionTask, error)
	AddProvisionRecords(ctx context.Context, recs []*ProvisionRecord) error
	ListProvisionRecords(ctx context.Context, q ProvisionRecordQuery) ([]*ProvisionRecord, error)
}
