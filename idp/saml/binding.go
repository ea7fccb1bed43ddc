package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// requestError is a message refused: Public is what the client is told, in qiao's words; the
// wrapped cause (often a library's error, which may name internals) goes to the log only.
type requestError struct {
	Status int
	Public string
	Cause  error
}

func (e *requestError) Error() string {
	if e.Cause == nil {
		return e.Public
	}
	return e.Public + ": " + e.Cause.Error()
}

func (e *requestError) Unwrap() error { return e.Cause }

// badRequest is a 400 that tells the client public and logs cause.
func badRequest(public string, cause error) error {
	return &requestError{Status: http.StatusBadRequest, Public: public, Cause: cause}
}

// publicError is what the client may be told about err, and the status to answer with: a
// requestError's own words, or a generic internal error for anything else.
func publicError(err error) (int, string) {
	var re *requestError
	if errors.As(err, &re) {
		return re.Status, re.Public
	}
	return http.StatusInternalServerError, "the request could not be handled"
}

// message is a SAML protocol message as received on the HTTP-Redirect or HTTP-POST binding.
type message struct {
	Field      string // SAMLRequest or SAMLResponse
	XML        []byte // the message (inflated, on HTTP-Redirect)
	RelayState string
	// Query is the HTTP-Redirect query signature, nil when there is none (or on HTTP-POST, whose
	// signatures are inside the XML).
	Query *querySignature
}

// querySignature is an HTTP-Redirect signature: the octets it covers — field=…[&RelayState=…]
// &SigAlg=… exactly as received (SAML bindings §3.4.4.1) — its algorithm and its value. The
// octets come from the very parameters message's XML and RelayState were decoded from.
type querySignature struct {
	Signed []byte
	Alg    string
	Value  []byte
}

// param is one query or form parameter: its octets as sent and its decoded value.
type param struct{ raw, value string }

// parseParams reads an application/x-www-form-urlencoded string once, for both the signature
// check and the message. A parameter name must be plain (letters, digits, '.', '_', '-': no
// percent-encoding, which would let SAML%52equest stand for SAMLRequest) and appear once: any
// other reading of the same string could otherwise take a different value than the one signed.
func parseParams(raw string) (map[string]param, error) {
	params := map[string]param{}
	for _, kv := range strings.Split(raw, "&") {
		if kv == "" {
			continue
		}
		name, v, _ := strings.Cut(kv, "=")
		if !plainName(name) {
			return nil, badRequest("a parameter name is encoded or malformed (parameter names must be sent as they are)", nil)
		}
		if _, dup := params[name]; dup {
			return nil, badRequest("parameter "+name+" is given more than once", nil)
		}
		value, err := url.QueryUnescape(v)
		if err != nil {
			return nil, badRequest("parameter "+name+" is not URL-encoded", err)
		}
		params[name] = param{raw: v, value: value}
	}
	return params, nil
}

func plainName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// messageField is which of SAMLRequest and SAMLResponse params carry: exactly one of them.
func messageField(params map[string]param) (string, param, error) {
	req, isReq := params["SAMLRequest"]
	resp, isResp := params["SAMLResponse"]
	switch {
	case isReq && isResp:
		return "", param{}, badRequest("both SAMLRequest and SAMLResponse are given", nil)
	case isReq:
		return "SAMLRequest", req, nil
	case isResp:
		return "SAMLResponse", resp, nil
	}
	return "", param{}, badRequest("no SAMLRequest or SAMLResponse", nil)
}

func relayState(params map[string]param) (string, error) {
	relay := params["RelayState"].value
	if len(relay) > 1024 {
		return "", badRequest("RelayState longer than 1024 bytes", nil)
	}
	return relay, nil
}

// parseRedirect reads an HTTP-Redirect binding query (SAML bindings §3.4.4): the DEFLATEd
// message, RelayState, and the query signature if there is one, all from one parse of raw.
func parseRedirect(raw string) (*message, error) {
	params, err := parseParams(raw)
	if err != nil {
		return nil, err
	}
	field, msg, err := messageField(params)
	if err != nil {
		return nil, err
	}
	m := &message{Field: field}
	if m.RelayState, err = relayState(params); err != nil {
		return nil, err
	}
	if msg.value == "" || len(msg.value) > maxEncodedRequest {
		return nil, badRequest("missing or oversized "+field, nil)
	}
	compressed, err := base64.StdEncoding.DecodeString(msg.value)
	if err != nil {
		return nil, badRequest(field+" is not base64", err)
	}
	if m.XML, err = inflate(compressed); err != nil {
		return nil, badRequest(field+" does not inflate (DEFLATE expected, at most 256 KiB)", err)
	}
	sig, hasSig := params["Signature"]
	alg, hasAlg := params["SigAlg"]
	if hasSig != hasAlg {
		return nil, badRequest("Signature and SigAlg must be given together", nil)
	}
	if !hasSig {
		return m, nil
	}
	value, err := base64.StdEncoding.DecodeString(sig.value)
	if err != nil || len(value) == 0 {
		return nil, badRequest("the Signature parameter is not base64", err)
	}
	signed := field + "=" + msg.raw
	if r, ok := params["RelayState"]; ok {
		signed += "&RelayState=" + r.raw
	}
	signed += "&SigAlg=" + alg.raw
	m.Query = &querySignature{Signed: []byte(signed), Alg: alg.value, Value: value}
	return m, nil
}

// parsePost reads an HTTP-POST binding form body (SAML bindings §3.5.4): the base64 message and
// RelayState. Signatures on this binding are inside the XML.
func parsePost(body string) (*message, error) {
	params, err := parseParams(body)
	if err != nil {
		return nil, err
	}
	field, msg, err := messageField(params)
	if err != nil {
		return nil, err
	}
	m := &message{Field: field}
	if m.RelayState, err = relayState(params); err != nil {
		return nil, err
	}
	if msg.value == "" || len(msg.value) > 4*maxRequestXML/3+4 {
		return nil, badRequest("missing or oversized "+field, nil)
	}
	if m.XML, err = base64.StdEncoding.DecodeString(msg.value); err != nil {
		return nil, badRequest(field+" is not base64", err)
	}
	if len(m.XML) > maxRequestXML {
		return nil, badRequest(fmt.Sprintf("%s larger than %d bytes", field, maxRequestXML), nil)
	}
	return m, nil
}

// readMessage reads the SAML message of a request on either binding: the query of a GET, the
// form body of a POST (its query is not read).
func readMessage(w http.ResponseWriter, r *http.Request) (*message, error) {
	switch r.Method {
	case http.MethodGet:
		return parseRedirect(r.URL.RawQuery)
	case http.MethodPost:
		if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
			return nil, badRequest("the form must be sent as application/x-www-form-urlencoded", err)
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 2*maxRequestXML))
		if err != nil {
			return nil, badRequest("the form cannot be read (at most 512 KiB)", err)
		}
		return parsePost(string(body))
	}
	return nil, &requestError{Status: http.StatusMethodNotAllowed, Public: "method not allowed"}
}

// inflate undoes the HTTP-Redirect binding's DEFLATE, refusing more than maxRequestXML bytes.
func inflate(compressed []byte) ([]byte, error) {
	fr := flate.NewReader(bytes.NewReader(compressed))
	defer fr.Close()
	buf, err := io.ReadAll(io.LimitReader(fr, maxRequestXML+1))
	if err != nil {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if len(buf) > maxRequestXML {
		return nil, fmt.Errorf("inflates past %d bytes", maxRequestXML)
	}
	return buf, nil
}
