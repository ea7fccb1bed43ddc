package directory

import (
	"context"
	"time"
)

// Lease is one row of the leases table: who runs a singleton job, under which epoch, until when.
// directory/lease builds acquisition, renewal and fencing on it.
type Lease struct {
	Name       string
	Holder     string
	Epoch      int64 // grows by one on every acquisition
	AcquiredAt time.Time
	ExpiresAt  time.Time // zero once released
}

// LeaseStore keeps the leases of singleton jobs. Use directory/lease rather than these methods.
type LeaseStore interface {
	// AcquireLease takes the named lease for holder until until when nobody holds it (never taken,
	// released, or expired at now) and returns the new epoch; ErrConflict when another holds it.
	AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (int64, error)
	// RenewLease extends a lease its holder still holds at epoch; ErrNotFound when it does not.
	RenewLease(ctx context.Context, name, holder string, epoch int64, until time.Time) error
	// ReleaseLease gives a lease up (ErrNotFound when holder no longer holds it at epoch).
	ReleaseLease(ctx context.Context, name, holder string, epoch int64) error
	// CheckLease verifies, inside a transaction, that holder still holds the lease at epoch and
	// keeps anyone from taking it over until the transaction ends (PostgreSQL: the row is locked;
	// SQLite: the transaction holds the write lock). ErrNotFound when the lease was lost.
	CheckLease(ctx context.Context, name, holder string, epoch int64) error
	// GetLease returns the named lease's row.
	GetLease(ctx context.Context, name string) (*Lease, error)
}

// SigningKey is a signing key as stored: the private key in PKCS#8 DER (the store seals it with
// the master key at rest) and, for SAML keys, the certificate in DER.
type SigningKey struct {
	ID         string // RFC 7638 thumbprint
	Alg        string
	PrivateDER []byte
	CertDER    []byte
	CreatedAt  time.Time
	RetiredAt  time.Time // zero while active
	ExpiresAt  time.Time // when a retired key stops being published
}

// SigningKeyStore keeps the signing keys every replica shares (keys.Manager on a database).
type SigningKeyStore interface {
	ListSigningKeys(ctx context.Context) ([]*SigningKey, error)
	// AddSigningKey stores a new key (ErrConflict if its ID exists).
	AddSigningKey(ctx context.Context, k *SigningKey) error
	// RetireSigningKey marks a key retired at retired, published until expires.
	RetireSigningKey(ctx context.Context, id string, retired, expires time.Time) error
	DeleteSigningKey(ctx context.Context, id string) error
}
