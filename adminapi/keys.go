package adminapi

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/keys"
)

// SigningKey is a published signing key of the gateway (public facts only).
type SigningKey struct {
	KID       string     `json:"kid" doc:"RFC 7638 thumbprint"`
	Alg       string     `json:"alg" enum:"RS256,ES256,EdDSA,SAML"`
	State     string     `json:"state" enum:"active,retiring" doc:"active: signs new tokens; retiring: still published until expires_at"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty" doc:"when a retiring key stops being published"`
}

func keyView(k *keys.Key) SigningKey {
	v := SigningKey{KID: k.ID, Alg: k.Alg, State: "active", CreatedAt: k.CreatedAt}
	if !k.Active() {
		r, e := k.RetiredAt, k.ExpiresAt
		v.State, v.RetiredAt, v.ExpiresAt = "retiring", &r, &e
	}
	return v
}

type keyList struct {
	Body struct {
		Items []SigningKey `json:"items"`
	}
}

func (a *API) keyList() *keyList {
	out := &keyList{}
	out.Body.Items = []SigningKey{}
	for _, k := range a.Keys.Published() {
		out.Body.Items = append(out.Body.Items, keyView(k))
	}
	return out
}

func (a *API) registerKeys() {
	tags := []string{"keys"}
	huma.Register(a.huma, huma.Operation{OperationID: "list-keys", Method: http.MethodGet, Path: "/enterprises/{ent}/keys",
		Summary: "The signing keys of the OpenID Provider and SAML IdP", Tags: tags,
		Description: "The keys are the gateway's, shared by every enterprise: the active one of each algorithm and the retiring ones still published.",
		Errors:      errs()},
		func(ctx context.Context, in *EntPath) (*keyList, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAuditor); err != nil {
				return nil, err
			}
			return a.keyList(), nil
		})

	huma.Register(a.huma, huma.Operation{OperationID: "rotate-keys", Method: http.MethodPost, Path: "/enterprises/{ent}/keys/rotate",
		Summary: "Rotate signing keys (platform operators)", MaxBodyBytes: MaxBody, Tags: tags,
		Description: "A new active key for each algorithm named (all when none): the old one retires and stays published for the grace period " +
			"(key_rotation_grace), so what it signed still verifies. The keys are shared by every enterprise of the gateway; other replicas " +
			"sharing the keys directory pick the change up within 30 seconds. Because they are every enterprise's, only a platform operator " +
			"rotates them. Answers the keys now published.",
		Errors: errs(http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)},
		func(ctx context.Context, in *struct {
			EntPath
			Body *struct {
				Algs []string `json:"algs,omitempty" maxItems:"4" enum:"RS256,ES256,EdDSA,SAML" doc:"default: all"`
			}
		}) (*keyList, error) {
			// The keys sign for every enterprise: an owner of one may not rotate them for all.
			p, _, err := a.enterpriseOperator(ctx, in.Ent)
			if err != nil {
				return nil, err
			}
			var algs []string
			if in.Body != nil {
				for _, al := range in.Body.Algs {
					if !slices.Contains(algs, al) {
						algs = append(algs, al)
					}
				}
			}
			unlock, err := a.lock(ctx, "signing keys")
			if err != nil {
				return nil, err
			}
			defer unlock()
			rotated, err := a.Keys.Rotate(algs...)
			if err != nil {
				a.Log.Error("admin API: rotate keys", "err", err)
				return nil, huma.Error503ServiceUnavailable("the keys could not be rotated right now")
			}
			var made []SigningKey
			for _, k := range rotated {
				made = append(made, keyView(k))
			}
			if err := a.audit(ctx, a.Store, p, in.Ent, "admin.keys.rotate", "", "signing keys", nil, made, nil); err != nil {
				return nil, storeError(err)
			}
			return a.keyList(), nil
		})
}
