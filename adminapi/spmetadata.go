package adminapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/qiao-gateway/qiao/directory"
	idpsaml "github.com/qiao-gateway/qiao/idp/saml"
)

// SPMetadata fetches service providers' metadata URLs and says how the last fetch went
// (*idpsaml.Provider).
type SPMetadata interface {
	MetadataStatus(ctx context.Context, ent, entityID string) (*idpsaml.MetadataStatus, error)
	RefreshMetadata(ctx context.Context, ent, entityID string) (*idpsaml.MetadataStatus, error)
}

// MetadataFetch is how the last fetch of a service provider's metadata URL went.
type MetadataFetch struct {
	FetchedAt  time.Time `json:"fetched_at"`
	OK         bool      `json:"ok"`
	Error      string    `json:"error,omitempty" doc:"why the fetch or the metadata failed; logons go on with the last good copy, if any"`
	LastGoodAt time.Time `json:"last_good_at,omitzero" doc:"when the metadata last fetched well"`
	// What the last good metadata says.
	ACS           []string `json:"acs,omitempty"`
	Encrypted     bool     `json:"encrypted"`
	SignsRequests bool     `json:"signs_requests"`
}

// withMetadata adds to v how sp's metadata URL last fetched — fetching it first when fetch is
// set (just given, or asked for). A status this replica cannot read leaves v without one.
func (a *API) withMetadata(ctx context.Context, sp *directory.ServiceProvider, v ServiceProvider, fetch bool) ServiceProvider {
	if sp.MetadataURL == "" || a.SAML == nil {
		return v
	}
	var st *idpsaml.MetadataStatus
	var err error
	if fetch {
		fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		st, err = a.SAML.RefreshMetadata(fctx, sp.EnterpriseID, sp.EntityID)
		cancel()
	} else {
		st, err = a.SAML.MetadataStatus(ctx, sp.EnterpriseID, sp.EntityID)
	}
	if err != nil || st == nil || st.URL != sp.MetadataURL {
		if err != nil {
			a.Log.Warn("admin API: SAML SP metadata status", "enterprise", sp.EnterpriseID, "sp", sp.EntityID, "err", err)
		}
		return v
	}
	f := &MetadataFetch{FetchedAt: st.FetchedAt, OK: st.OK, Error: st.Error, LastGoodAt: st.LastGoodAt}
	if st.Summary != nil {
		f.ACS, f.Encrypted, f.SignsRequests = st.Summary.ACS, st.Summary.Encrypted, st.Summary.SignsRequests
	}
	v.MetadataFetch = f
	return v
}

func (a *API) registerSPMetadata() {
	huma.Register(a.huma, huma.Operation{OperationID: "refresh-service-provider-metadata", Method: http.MethodPost,
		Path: "/enterprises/{ent}/service-providers/{id}/refresh-metadata", Summary: "Fetch a SAML service provider's metadata URL now",
		Description: "Answers the service provider with metadata_fetch: when and how the fetch went. 409 for an SP whose metadata is inline.",
		Tags:        []string{"apps"}, Errors: errs(http.StatusConflict)},
		func(ctx context.Context, in *SPPath) (*struct{ Body ServiceProvider }, error) {
			if _, err := a.authorize(ctx, in.Ent, directory.RoleAdmin); err != nil {
				return nil, err
			}
			sp, err := a.spOf(ctx, a.Store, in.Ent, in.ID)
			if err != nil {
				return nil, err
			}
			if sp.MetadataURL == "" {
				return nil, huma.Error409Conflict(fmt.Sprintf("service provider %s has inline metadata: there is no URL to fetch", sp.EntityID))
			}
			return &struct{ Body ServiceProvider }{a.withMetadata(ctx, sp, a.spView(sp), true)}, nil
		})
}
