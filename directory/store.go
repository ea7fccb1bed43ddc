package directory

import (
	"context"
	"encoding/json"
	"time"
)

// Store is the durable state of qiao. Every method is safe for concurrent use. Writes that must
// happen together go through InTx.
type Store interface {
	// InTx runs fn with a Store whose reads and writes all belong to one transaction; the
	// transaction commits if fn returns nil and rolls back otherwise.
	InTx(ctx context.Context, fn func(tx Store) error) error
	Ping(ctx context.Context) error
	Close() error

	PutEnterprise(ctx context.Context, e *Enterprise) error
	GetEnterprise(ctx context.Context, id string) (*Enterprise, error)
	ListEnterprises(ctx context.Context) ([]*Enterprise, error)
	DeleteEnterprise(ctx context.Context, id string) error

	// PutSource creates or replaces a source. It returns ErrLimit when the enterprise would have
	// more than MaxEnabledSources enabled sources or more than one enabled custom (local) one.
	PutSource(ctx context.Context, s *IdentitySource) error
	GetSource(ctx context.Context, enterpriseID, id string) (*IdentitySource, error)
	ListSources(ctx context.Context, enterpriseID string) ([]*IdentitySource, error)
	DeleteSource(ctx context.Context, enterpriseID, id string) error

	PutDepartment(ctx context.Context, d *Department) error
	GetDepartment(ctx context.Context, enterpriseID, sourceID, upstreamID string) (*Department, error)
	ListDepartments(ctx context.Context, enterpriseID, sourceID string) ([]*Department, error)
	DeleteDepartment(ctx context.Context, enterpriseID, sourceID, upstreamID string) error

	// CreateUser stores a new user; a zero ID gets a fresh stable ID.
	CreateUser(ctx context.Context, u *User) error
	UpdateUser(ctx context.Context, u *User) error
	GetUser(ctx context.Context, enterpriseID, id string) (*User, error)
	GetUserByUsername(ctx context.Context, enterpriseID, username string) (*User, error)
	// FindUsers returns the users whose field (email or mobile) equals value.
	FindUsers(ctx context.Context, enterpriseID, field, value string) ([]*User, error)
	ListUsers(ctx context.Context, enterpriseID string, after string, limit int) ([]*User, error)
	// SearchUsers is the people search (UserSearch): indexed, parameterised.
	SearchUsers(ctx context.Context, q UserSearch) ([]*User, error)
	DeleteUser(ctx context.Context, enterpriseID, id string) error

	PutUserLink(ctx context.Context, l *UserLink) error
	GetUserLink(ctx context.Context, enterpriseID, sourceID, upstreamID string) (*UserLink, error)
	ListUserLinks(ctx context.Context, enterpriseID, sourceID string) ([]*UserLink, error)
	LinksOfUser(ctx context.Context, enterpriseID, userID string) ([]*UserLink, error)
	DeleteUserLink(ctx context.Context, enterpriseID, sourceID, upstreamID string) error
	// SourceUsers returns every link of a source with its user, in one query.
	SourceUsers(ctx context.Context, enterpriseID, sourceID string) ([]LinkedUser, error)
	// SourceLinkStates returns every link of a source reduced to what tells a sync whether the
	// person changed since it last wrote them: the link's SyncHash and the user's UpdatedAt.
	SourceLinkStates(ctx context.Context, enterpriseID, sourceID string) ([]LinkState, error)
	// StageUpstream keeps a running sync task's upstream records in the database until its apply
	// writes them (UserLink.Staged, SyncRecord.Staged); DropStaged deletes them.
	StageUpstream(ctx context.Context, taskID string, recs []StagedRecord) error
	DropStaged(ctx context.Context, taskID string) error

	PutGroup(ctx context.Context, g *Group) error
	GetGroup(ctx context.Context, enterpriseID, id string) (*Group, error)
	ListGroups(ctx context.Context, enterpriseID string) ([]*Group, error)
	GroupsOfUser(ctx context.Context, enterpriseID, userID string) ([]*Group, error)
	DeleteGroup(ctx context.Context, enterpriseID, id string) error

	PutClient(ctx context.Context, c *OIDCClient) error
	GetClient(ctx context.Context, enterpriseID, id string) (*OIDCClient, error)
	ListClients(ctx context.Context, enterpriseID string) ([]*OIDCClient, error)
	DeleteClient(ctx context.Context, enterpriseID, id string) error

	PutServiceProvider(ctx context.Context, sp *ServiceProvider) error
	GetServiceProvider(ctx context.Context, enterpriseID, entityID string) (*ServiceProvider, error)
	ListServiceProviders(ctx context.Context, enterpriseID string) ([]*ServiceProvider, error)
	DeleteServiceProvider(ctx context.Context, enterpriseID, entityID string) error

	CreateRefreshToken(ctx context.Context, t *RefreshToken) error
	GetRefreshToken(ctx context.Context, id string) (*RefreshToken, error)
	// RotateRefreshToken marks the token rotated at the given time and stores its successor next,
	// atomically: both happen or neither does. It returns ErrConflict when the token was already
	// rotated or revoked (the caller treats that as reuse) and ErrNotFound when there is none.
	RotateRefreshToken(ctx context.Context, id string, at time.Time, next *RefreshToken) error
	RevokeRefreshFamily(ctx context.Context, familyID string, at time.Time) (int, error)
	RevokeUserRefreshTokens(ctx context.Context, enterpriseID, userID string, at time.Time) (int, error)
	// RevokeUserSourceRefreshTokens revokes a user's refresh tokens whose grant began with a login
	// through one source, and returns how many.
	RevokeUserSourceRefreshTokens(ctx context.Context, enterpriseID, userID, sourceID string, at time.Time) (int, error)
	// RevokeSourceRefreshTokens revokes every refresh token whose grant began with a login through
	// a source (the source was closed or deleted) and returns how many.
	RevokeSourceRefreshTokens(ctx context.Context, enterpriseID, sourceID string, at time.Time) (int, error)
	// CountSourceRefreshTokens counts the live (unrevoked, unrotated, unexpired) refresh tokens
	// whose grant began with a login through a source.
	CountSourceRefreshTokens(ctx context.Context, enterpriseID, sourceID string) (int, error)
	// RevokeClientRefreshTokens revokes every refresh token of a client (the app was disabled).
	RevokeClientRefreshTokens(ctx context.Context, enterpriseID, clientID string, at time.Time) (int, error)
	// RefreshTokenClients lists the clients holding live (unrevoked, unexpired) refresh tokens of
	// a user: the relying parties to tell when the user departs.
	RefreshTokenClients(ctx context.Context, enterpriseID, userID string, now time.Time) ([]string, error)
	DeleteExpiredRefreshTokens(ctx context.Context, before time.Time) (int, error)

	CreateSyncTask(ctx context.Context, t *SyncTask) error
	FinishSyncTask(ctx context.Context, t *SyncTask) error
	// InterruptSyncTasks fails the source's tasks still marked running whose process died (a
	// crash, SIGKILL): the event tasks (events true) or the others. The caller holds the lock
	// such tasks run under, so none of them can still be running anywhere. It returns how many.
	InterruptSyncTasks(ctx context.Context, enterpriseID, sourceID string, events bool, at time.Time, reason string) (int, error)
	GetSyncTask(ctx context.Context, id string) (*SyncTask, error)
	ListSyncTasks(ctx context.Context, enterpriseID, sourceID string, limit int) ([]*SyncTask, error)
	AddSyncRecords(ctx context.Context, recs []*SyncRecord) error
	// ListSyncRecords pages through a task's records, optionally of one action and one object.
	ListSyncRecords(ctx context.Context, q RecordQuery) ([]*SyncRecord, error)
	DeleteSyncTasksBefore(ctx context.Context, before time.Time) (int, error)
	// TouchedByEvents lists the upstream IDs of the departments and users that event tasks of a
	// source (trigger event) started at or after startedFrom recorded a change of, the tasks that
	// finished at or after finishedFrom or have not finished. A full sync leaves them alone: its
	// snapshot is older than what those events applied.
	TouchedByEvents(ctx context.Context, enterpriseID, sourceID string, startedFrom, finishedFrom time.Time) (depts, users []string, err error)

	// AddSourceEvent stores an event unless one with its dedupe key exists; it reports whether it
	// stored it.
	AddSourceEvent(ctx context.Context, e *SourceEvent) (bool, error)
	// ClaimSourceEvents claims up to limit pending events whose claim expired, oldest first, until
	// claimUntil: of replicas claiming together, each event goes to one. Events of a closed
	// source are not claimed: they wait in the inbox until it is enabled again.
	ClaimSourceEvents(ctx context.Context, now, claimUntil time.Time, limit int) ([]*SourceEvent, error)
	// FinishSourceEvent records an event's outcome (status applied or failed; pending to retry).
	FinishSourceEvent(ctx context.Context, e *SourceEvent) error
	// ListSourceEvents returns a source's events, newest first.
	ListSourceEvents(ctx context.Context, enterpriseID, sourceID string, limit int) ([]*SourceEvent, error)

	// AddAccessJob queues work the access lifecycle owes; call it in the change's transaction.
	AddAccessJob(ctx context.Context, j *AccessJob) error
	// ClaimAccessJobs claims up to limit pending jobs whose claim expired, oldest first, until
	// claimUntil: of replicas claiming together, each job goes to one.
	ClaimAccessJobs(ctx context.Context, now, claimUntil time.Time, limit int) ([]*AccessJob, error)
	// FinishAccessJob records a job's outcome (status applied or failed; pending to retry).
	FinishAccessJob(ctx context.Context, j *AccessJob) error
	// ListAccessJobs returns an enterprise's jobs, newest first.
	ListAccessJobs(ctx context.Context, enterpriseID string, limit int) ([]*AccessJob, error)

	AddAuditEvent(ctx context.Context, e *AuditEvent) error
	ListAuditEvents(ctx context.Context, q AuditQuery) ([]*AuditEvent, error)
	// CountAuditEvents counts the enterprise's events of a kind (a trailing "." matches a prefix)
	// at or after since, per kind and per bucket of time counted from since.
	CountAuditEvents(ctx context.Context, ent, kind string, since time.Time, bucket time.Duration) ([]AuditCount, error)

	// AdminStore: administrator roles, platform operators and operator setup tokens.
	AdminStore
	// LeaseStore and SigningKeyStore: what replicas share besides the directory (leases.go).
	LeaseStore
	SigningKeyStore
}

// RecordQuery selects sync records.
type RecordQuery struct {
	TaskID     string
	Action     string // optional
	ObjectType string // optional
	UpstreamID string // optional
	AfterID    int64  // paging: records with a larger ID
	Limit      int
}

// AuditQuery selects audit events, newest first.
type AuditQuery struct {
	EnterpriseID string
	Kind         string // optional; a trailing "." matches a prefix ("login.")
	UserID       string // optional
	BeforeID     int64  // paging: events with a smaller ID
	Limit        int
}

// AuditCount is how many events of one kind fell in one bucket of time (CountAuditEvents).
type AuditCount struct {
	Kind   string
	Bucket int // the bucket's number: 0 starts at since
	Count  int
}

// LinkedUser is a user with their link to one source.
type LinkedUser struct {
	Link *UserLink
	User *User
}

// StagedRecord is an upstream record staged for a sync task under the number Seq.
type StagedRecord struct {
	Seq      int64
	Upstream json.RawMessage
}

// BulkUserWriter is a Store that writes many new people and their links in few statements: a
// full sync's creates. Both are CreateUser and PutUserLink for each element, in order, meant to be
// called inside InTx (a failure leaves earlier statements written until the transaction rolls back).
type BulkUserWriter interface {
	CreateUsers(ctx context.Context, users []*User) error
	PutUserLinks(ctx context.Context, links []*UserLink) error
}

// LinkState is a link of a source in brief (Store.SourceLinkStates).
type LinkState struct {
	UpstreamID    string
	UserID        string
	SyncHash      string
	UserUpdatedAt time.Time
}
