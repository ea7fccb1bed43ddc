// Package federation defines what a platform connector can do for the rest of qiao — read a
// directory, log a person on, decode events — in the platform-neutral terms the sync engine and
// the broker consume. Each platform (federation/wecom, federation/dingtalk) implements them.
// federation knows nothing of qiao's storage.
package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Dept is an upstream department.
type Dept struct {
	ID       string
	ParentID string // "" for the root of what was read
	Name     string
	Order    int64
	Raw      json.RawMessage
}

// UserStatus is an upstream user's state in platform-neutral terms.
type UserStatus string

// Upstream states.
const (
	StatusActive   UserStatus = "active"
	StatusDisabled UserStatus = "disabled"
	StatusInactive UserStatus = "inactive" // not activated
	StatusExited   UserStatus = "exited"
)

// User is an upstream user.
type User struct {
	UserID  string
	UnionID string
	Status  UserStatus
	Depts   []string
	// Attrs are the upstream fields, flattened to strings for field mapping: "userid", "name",
	// "email", "mobile", "position", ... and "ext.<name>" for extended attributes.
	Attrs map[string]string
	Raw   json.RawMessage
}

// ReadInfo says how a directory was read.
type ReadInfo struct {
	Mode  string // e.g. "department/list+user/list"
	Calls int    // API calls made
}

// DirectoryReader reads a source's directory. Departments returns the departments in the
// subtrees rooted at roots (the whole org when roots is empty), parents before children. Users
// calls fn for each user of those departments, each user once.
type DirectoryReader interface {
	Departments(ctx context.Context, roots []string) ([]Dept, error)
	Users(ctx context.Context, depts []Dept, fn func(User) error) error
	Info() ReadInfo
}

// Error is an upstream failure an admin can act on: Message says what to do.
type Error struct {
	Platform string
	API      string
	Code     int    // errcode, or the HTTP status for DingTalk's new API
	SubCode  string // DingTalk's new-API code
	Message  string
	Err      error
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Code != 0 {
		return e.Platform + " " + e.API + ": errcode " + strconv.Itoa(e.Code) + ": " + msg
	}
	return e.Platform + " " + e.API + ": " + msg
}

func (e *Error) Unwrap() error { return e.Err }

// ErrNotFound marks an upstream "no such user/department" answer.
var ErrNotFound = errors.New("not found upstream")

// Event is a contact event from a platform, normalised. Events are hints: the sync engine re-reads
// the users and departments they name.
type Event struct {
	Type      string   `json:"type"` // the platform's: create_user, user_leave_org, ...
	UserIDs   []string `json:"user_ids,omitempty"`
	NewUserID string   `json:"new_user_id,omitempty"` // WeCom: a userid change
	DeptIDs   []string `json:"dept_ids,omitempty"`
	Key       string   `json:"key"` // dedupe key: a repeated delivery has the same one
}

// Callback is a verified, decrypted callback request.
type Callback struct {
	Timestamp time.Time
	Nonce     string
	// Signature is the verified signature as the decoder computed it (lower-case hex), not as
	// the sender spelled it: it keys replay detection, and a spelling the check accepts (hex in
	// upper case) must not be a new key.
	Signature string
	Events    []Event // none for URL verification
	// Reply is what to answer once the events are stored durably.
	ReplyType string
	Reply     []byte
}

// CallbackDecoder verifies and decrypts a platform's event callbacks.
type CallbackDecoder interface {
	Decode(method string, query url.Values, body []byte) (*Callback, error)
}

// Callback errors: the request is not from the platform (or not for this source) or malformed.
var (
	ErrForged    = errors.New("callback signature or receive ID does not verify")
	ErrMalformed = errors.New("callback request is malformed")
)

// UserReader reads one user; ErrNotFound when the platform no longer has them.
type UserReader interface {
	User(ctx context.Context, userid string) (User, error)
}

// DeptReader reads one department; ErrNotFound when it is gone.
type DeptReader interface {
	Department(ctx context.Context, id string) (Dept, error)
}

// Identity is who an upstream login says a person is.
type Identity struct {
	UserID  string            // the platform userid in the source's corp
	UnionID string            // DingTalk
	Method  string            // how they logged in: wecom_qr, wecom_inapp, dingtalk, dingtalk_inapp
	Attrs   map[string]string // fields the login disclosed (WeCom snsapi_privateinfo: mobile, email, ...)
	// Consented says the person agreed to disclose Attrs to this organisation (WeCom's
	// snsapi_privateinfo consent page): the directory keeps them (dirsync.Engine.Consent).
	Consented bool
}

// ErrNotMember means the person who logged in upstream is not a member of the source's corp.
var ErrNotMember = errors.New("the person is not a member of this organisation")

// ErrExternalContact means the person is known to the source's corp only as an external contact
// (DingTalk contact_type 1): not a member either (errors.Is it ErrNotMember), but worth telling
// apart in the audit log and on the page.
var ErrExternalContact = fmt.Errorf("%w: an external contact of the organisation", ErrNotMember)

// Login is a platform's login: the URL that starts it and the exchange of the code it returns.
type Login interface {
	// AuthURL starts a login returning to redirectURI with state; inApp selects the platform's
	// in-app flow (the person is inside the WeCom or DingTalk app).
	AuthURL(redirectURI, state, lang string, inApp bool) (string, error)
	// Exchange turns the code the platform returned into an identity.
	Exchange(ctx context.Context, code string, inApp bool) (*Identity, error)
	// CallbackDomain is the host[:port] the platform allows redirects to ("" when not set).
	CallbackDomain() string
}
