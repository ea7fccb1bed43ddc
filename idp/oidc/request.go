package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"slices"
	"time"

	zoidc "github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/internal/state"
)

// authRequest is an authorization request between /authorize and the token exchange. It lives in
// the state store (memory or Redis) so any replica can continue it.
type authRequest struct {
	ID                  string    `json:"id"`
	Enterprise          string    `json:"ent"`
	ClientID            string    `json:"client"`
	RedirectURI         string    `json:"redirect_uri"`
	State               string    `json:"state,omitempty"`
	Nonce               string    `json:"nonce,omitempty"`
	Scopes              []string  `json:"scopes"`
	ResponseType        string    `json:"response_type"`
	ResponseMode        string    `json:"response_mode,omitempty"`
	Prompt              []string  `json:"prompt,omitempty"`
	MaxAge              *uint     `json:"max_age,omitempty"`
	LoginHint           string    `json:"login_hint,omitempty"`
	UILocales           []string  `json:"ui_locales,omitempty"`
	ACRValues           []string  `json:"acr_values,omitempty"`
	IDPHint             string    `json:"idp_hint,omitempty"`
	HintSubject         string    `json:"hint_sub,omitempty"` // sub of id_token_hint
	CodeChallenge       string    `json:"cc,omitempty"`
	CodeChallengeMethod string    `json:"ccm,omitempty"`
	CreatedAt           time.Time `json:"created"`
	UserID              string    `json:"uid,omitempty"`
	AuthTime            time.Time `json:"auth_time,omitzero"`
	AMR                 []string  `json:"amr,omitempty"`
	Source              string    `json:"src,omitempty"`
	SID                 string    `json:"sid,omitempty"`
	IsDone              bool      `json:"done,omitempty"`
	Rounds              int       `json:"rounds,omitempty"` // times sent to the broker: a loop guard
}

func (a *authRequest) GetID() string         { return a.ID }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return a.AMR }
func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.AuthTime
}
func (a *authRequest) GetClientID() string { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *zoidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &zoidc.CodeChallenge{Challenge: a.CodeChallenge, Method: zoidc.CodeChallengeMethod(a.CodeChallengeMethod)}
}
func (a *authRequest) GetNonce() string                    { return a.Nonce }
func (a *authRequest) GetRedirectURI() string              { return a.RedirectURI }
func (a *authRequest) GetResponseType() zoidc.ResponseType { return zoidc.ResponseType(a.ResponseType) }
func (a *authRequest) GetResponseMode() zoidc.ResponseMode { return zoidc.ResponseMode(a.ResponseMode) }
func (a *authRequest) GetScopes() []string                 { return a.Scopes }
func (a *authRequest) GetState() string                    { return a.State }
func (a *authRequest) GetSubject() string                  { return a.UserID }
func (a *authRequest) Done() bool                          { return a.IsDone }
func (a *authRequest) hasPrompt(p string) bool             { return slices.Contains(a.Prompt, p) }

// grant is what the tokens of the code's grant carry: the grant is the request itself.
func (a *authRequest) grant() userGrant {
	return userGrant{Client: a.ClientID, User: a.UserID, Family: a.ID, Source: a.Source, SID: a.SID, Scopes: a.Scopes, AMR: a.AMR, AuthTime: a.AuthTime}
}

// maxAge is the request's max_age (prompt=login sets it to 0).
func (a *authRequest) maxAge() (time.Duration, bool) {
	if a.MaxAge == nil {
		return 0, false
	}
	return time.Duration(*a.MaxAge) * time.Second, true
}

// refreshRequest is a token request made with a refresh token.
type refreshRequest struct {
	rt      *directory.RefreshToken
	current []string // the scopes asked for now: all of rt.Scopes or fewer
}

func (r *refreshRequest) GetAMR() []string            { return r.rt.AMR }
func (r *refreshRequest) GetAudience() []string       { return []string{r.rt.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.rt.AuthTime }
func (r *refreshRequest) GetClientID() string         { return r.rt.ClientID }
func (r *refreshRequest) GetScopes() []string         { return r.current }
func (r *refreshRequest) GetSubject() string          { return r.rt.UserID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.current = s }

// grant keeps the family's full scopes: narrowing one refresh does not narrow the next.
func (r *refreshRequest) grant() userGrant {
	return userGrant{Client: r.rt.ClientID, User: r.rt.UserID, Family: r.rt.FamilyID, Source: r.rt.SourceID, SID: r.rt.SessionID,
		Scopes: r.rt.Scopes, AMR: r.rt.AMR, AuthTime: r.rt.AuthTime}
}

// clientRequest is a client_credentials token request: the client acts for itself.
type clientRequest struct {
	clientID string
	scopes   []string
	audience []string // the client, then the resource servers its scopes are for
}

func (c *clientRequest) GetSubject() string    { return c.clientID }
func (c *clientRequest) GetAudience() []string { return c.audience }
func (c *clientRequest) GetScopes() []string   { return c.scopes }

// userGrant is what a person's grant (a code, then its refresh family) carries into every token
// it issues.
type userGrant struct {
	Client, User, Family, Source, SID string
	Scopes, AMR                       []string
	AuthTime                          time.Time
}

// granted is a token request made for a person: an authorization code or a refresh token.
type granted interface{ grant() userGrant }

func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func hashToken(v string) string {
	h := sha256.Sum256([]byte(v))
	return hex.EncodeToString(h[:])
}

// ctxKey carries the per-request facts the op package's storage calls cannot see.
type ctxKey struct{}

type reqInfo struct {
	enterprise string
	r          *http.Request
	w          http.ResponseWriter
	alg        string // the ID token algorithm of the client this request serves
	confirmed  bool   // the person confirmed an end_session that had no id_token_hint
	// assertedClient is the client whose private_key_jwt assertion this request carried and the
	// provider verified (clientAssertion).
	assertedClient string
	// authClient is the client a token, introspection or revocation request was authenticated as
	// (a public client: identified as) before the library saw it (authenticateClient).
	authClient string
	authMethod string // how: basic, post, jwt or none
	// user is the person this request found active (storage.activeUser), read once for its claims.
	user *directory.User
	// codeRead and endedRead are an authorization_code request's code record and its client's
	// ended marker, read in the failure counters' round trip (authenticateClient) for
	// AuthRequestByCode; they are only reads, taken for the client authenticated.
	codeRead, endedRead *state.Op
	// ar is the authorization request this request loaded, for SaveAuthCode to store with the
	// code; arDeleted the one whose record AuthRequestByCode already deleted.
	ar        *authRequest
	arDeleted string
}

func info(ctx context.Context) *reqInfo {
	if i, ok := ctx.Value(ctxKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}
