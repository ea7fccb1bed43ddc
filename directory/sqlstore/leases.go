package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/qiao-gateway/qiao/directory"
)

// AcquireLease implements directory.LeaseStore. The insert-or-take-over is one statement, so two
// replicas acquiring together cannot both win: PostgreSQL serializes them on the row (ON CONFLICT
// locks it), SQLite on its write lock.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, now, until time.Time) (int64, error) {
	var epoch int64
	err := s.q.QueryRowContext(ctx, `INSERT INTO leases (name, holder, epoch, acquired_at, expires_at) VALUES ($1, $2, 1, $3, $4)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, epoch = leases.epoch + 1,
			acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
		WHERE leases.expires_at <= $3
		RETURNING epoch`, name, holder, ms(now), ms(until)).Scan(&epoch)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("lease %s: %w", name, directory.ErrConflict)
	}
	if err != nil {
		return 0, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return epoch, nil
}

// RenewLease implements directory.LeaseStore. It does not look at expiry: while nobody took the
// lease over (the epoch is unchanged) the holder still holds it.
func (s *Store) RenewLease(ctx context.Context, name, holder string, epoch int64, until time.Time) error {
	res, err := s.q.ExecContext(ctx, `UPDATE leases SET expires_at = $4 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at <> 0`,
		name, holder, epoch, ms(until))
	return expectOne(res, err, "renew lease "+name)
}

// ReleaseLease implements directory.LeaseStore.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string, epoch int64) error {
	res, err := s.q.ExecContext(ctx, `UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at <> 0`,
		name, holder, epoch)
	return expectOne(res, err, "release lease "+name)
}

// CheckLease implements directory.LeaseStore: a no-op update takes the row's lock (PostgreSQL) so
// an acquisition by another replica waits until the checking transaction ends; SQLite's
// transactions hold the database's write lock from BEGIN.
func (s *Store) CheckLease(ctx context.Context, name, holder string, epoch int64) error {
	res, err := s.q.ExecContext(ctx, `UPDATE leases SET epoch = epoch WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at <> 0`,
		name, holder, epoch)
	return expectOne(res, err, "lease "+name)
}

// GetLease implements directory.LeaseStore.
func (s *Store) GetLease(ctx context.Context, name string) (*directory.Lease, error) {
	l := &directory.Lease{Name: name}
	var acq, exp int64
	err := s.q.QueryRowContext(ctx, `SELECT holder, epoch, acquired_at, expires_at FROM leases WHERE name = $1`, name).
		Scan(&l.Holder, &l.Epoch, &acq, &exp)
	if err != nil {
		return nil, mapErr(err, "lease "+name)
	}
	l.AcquiredAt, l.ExpiresAt = fromMS(acq), fromMS(exp)
	return l, nil
}

func signingKeyAAD(kid string) []byte { return []byte("signing_keys/" + kid) }

// ListSigningKeys implements directory.SigningKeyStore, oldest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]*directory.SigningKey, error) {
	rows, err := s.q.QueryContext(ctx, `SELECT kid, alg, private_key, cert, created_at, retired_at, expires_at FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, fmt.Errorf("list signing keys: %w", err)
	}
	defer rows.Close()
	var out []*directory.SigningKey
	for rows.Next() {
		k := &directory.SigningKey{}
		var sealed []byte
		var created, retired, expires int64
		if err := rows.Scan(&k.ID, &k.Alg, &sealed, &k.CertDER, &created, &retired, &expires); err != nil {
			return nil, fmt.Errorf("list signing keys: %w", err)
		}
		if k.PrivateDER, err = s.box.Open(sealed, signingKeyAAD(k.ID)); err != nil {
			return nil, fmt.Errorf("signing key %s: cannot decrypt it with this master key: %w", k.ID, err)
		}
		k.CreatedAt, k.RetiredAt, k.ExpiresAt = fromMS(created), fromMS(retired), fromMS(expires)
		out = append(out, k)
	}
	return out, rows.Err()
}

// AddSigningKey implements directory.SigningKeyStore.
func (s *Store) AddSigningKey(ctx context.Context, k *directory.SigningKey) error {
	var cert any
	if len(k.CertDER) > 0 {
		cert = k.CertDER
	}
	_, err := s.q.ExecContext(ctx, `INSERT INTO signing_keys (kid, alg, private_key, cert, created_at, retired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		k.ID, k.Alg, s.box.Seal(k.PrivateDER, signingKeyAAD(k.ID)), cert, ms(k.CreatedAt), ms(k.RetiredAt), ms(k.ExpiresAt))
	return mapErr(err, "add signing key "+k.ID)
}

// RetireSigningKey implements directory.SigningKeyStore.
func (s *Store) RetireSigningKey(ctx context.Context, id string, retired, expires time.Time) error {
	res, err := s.q.ExecContext(ctx, `UPDATE signing_keys SET retired_at = $2, expires_at = $3 WHERE kid = $1`, id, ms(retired), ms(expires))
	return expectOne(res, err, "retire signing key "+id)
}

// DeleteSigningKey implements directory.SigningKeyStore.
func (s *Store) DeleteSigningKey(ctx context.Context, id string) error {
	res, err := s.q.ExecContext(ctx, `DELETE FROM signing_keys WHERE kid = $1`, id)
	return expectOne(res, err, "delete signing key "+id)
}
