package federation

import (
	"context"
	"errors"
)

// WriteDept is a department as a provisioning target should hold it.
type WriteDept struct {
	ID       string `json:"id,omitempty"` // the platform's ID; "" on create (the platform assigns it)
	ParentID string `json:"parentid"`
	Name     string `json:"name"`
	Order    int64  `json:"order,omitempty"`
}

// WriteUser is a person as a provisioning target should hold them.
type WriteUser struct {
	UserID string `json:"userid"`
	// NewUserID renames the person (update only; "" keeps the userid).
	NewUserID string `json:"new_userid,omitempty"`
	Name      string `json:"name"`
	Alias     string `json:"alias,omitempty"`
	Mobile    string `json:"mobile,omitempty"`
	Email     string `json:"email,omitempty"`
	Position  string `json:"position,omitempty"`
	Gender    string `json:"gender,omitempty"` // "0" unset, "1" male, "2" female
	Telephone string `json:"telephone,omitempty"`
	// Depts are the platform's department IDs; the first is the main one.
	Depts    []string          `json:"department"`
	Enabled  bool              `json:"enable"`
	ExtAttrs map[string]string `json:"extattr,omitempty"`
}

// DirectoryWriter creates, changes and removes a platform's departments and people: outbound
// provisioning. Its errors are *Error values whose Err says what the caller may do about them
// (errors.Is): ErrExists, ErrNotFound, ErrInUse, ErrNotEmpty, ErrTransient; any other failure
// is permanent for the data sent.
type DirectoryWriter interface {
	CreateDepartment(ctx context.Context, d WriteDept) (id string, err error)
	UpdateDepartment(ctx context.Context, d WriteDept) error
	DeleteDepartment(ctx context.Context, id string) error
	// FindDepartment returns the ID of parent's child called name (ErrNotFound when none).
	FindDepartment(ctx context.Context, parent, name string) (string, error)
	CreateUser(ctx context.Context, u WriteUser) error
	UpdateUser(ctx context.Context, u WriteUser) error
	DeleteUser(ctx context.Context, userid string) error
	// Reader reads what the platform holds (the reconcile's "before").
	Reader() DirectoryReader
	// Calls is the number of API calls made so far.
	Calls() int64
}

// Outcomes of a write the caller acts on.
var (
	// ErrExists: the userid, department ID or department name is taken.
	ErrExists = errors.New("already exists upstream")
	// ErrInUse: a field that must be unique upstream (mobile, email) belongs to someone else.
	ErrInUse = errors.New("a unique field is in use upstream")
	// ErrNotEmpty: the department still has members or sub-departments.
	ErrNotEmpty = errors.New("department is not empty upstream")
	// ErrTransient: the platform was busy, rate-limited or unreachable; retry later.
	ErrTransient = errors.New("temporary upstream failure")
)
