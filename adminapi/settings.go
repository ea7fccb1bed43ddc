package adminapi

import (
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/qiao-gateway/qiao/directory"
)

// WeComSettings are a WeCom source's settings (federation/wecom). On a write, an omitted field
// is left as it is and "" clears it; a secret is write-only: answered masked (••••1a2b), and
// sending the masked value back leaves it unchanged.
type WeComSettings struct {
	CorpID              *string `json:"corp_id,omitempty" maxLength:"128" qiao:"config.corp_id" doc:"企业ID (WeCom admin console → 我的企业 → 企业ID)"`
	AgentID             *string `json:"agent_id,omitempty" maxLength:"64" qiao:"config.agent_id" doc:"the self-built app's AgentId"`
	LoginMode           *string `json:"login_mode,omitempty" enum:"qr,qr_legacy" qiao:"config.login_mode" doc:"the browser's QR page: qr (wwlogin, default) or qr_legacy (qrConnect)"`
	InAppDetail         *bool   `json:"inapp_detail,omitempty" qiao:"config.inapp_detail" doc:"in-app logins ask for the sensitive fields (snsapi_privateinfo)"`
	CallbackDomain      *string `json:"callback_domain,omitempty" maxLength:"253" qiao:"config.callback_domain" doc:"the app's trusted domain: must be the external URL's host"`
	DomainVerifyFile    *string `json:"domain_verify_file,omitempty" maxLength:"128" qiao:"config.domain_verify_file" doc:"WW_verify_….txt, served at the domain's root"`
	DomainVerifyContent *string `json:"domain_verify_content,omitempty" maxLength:"256" qiao:"config.domain_verify_content"`
	APIBaseURL          *string `json:"api_base_url,omitempty" maxLength:"512" qiao:"config.api_base_url" doc:"default https://qyapi.weixin.qq.com"`
	LoginBaseURL        *string `json:"login_base_url,omitempty" maxLength:"512" qiao:"config.login_base_url"`
	OpenBaseURL         *string `json:"open_base_url,omitempty" maxLength:"512" qiao:"config.open_base_url"`
	OAuthBaseURL        *string `json:"oauth_base_url,omitempty" maxLength:"512" qiao:"config.oauth_base_url"`
	RateLimit           *string `json:"rate_limit,omitempty" maxLength:"32" qiao:"config.rate_limit" doc:"calls per second, overriding the published limit"`
	Secret              *string `json:"secret,omitempty" maxLength:"512" qiao:"secrets.secret" doc:"the app's Secret (write-only)"`
	ContactSecret       *string `json:"contact_secret,omitempty" maxLength:"512" qiao:"secrets.contact_secret" doc:"通讯录同步 Secret (write-only)"`
	CallbackToken       *string `json:"callback_token,omitempty" maxLength:"512" qiao:"secrets.callback_token" doc:"event callback Token (write-only)"`
	EncodingAESKey      *string `json:"encoding_aes_key,omitempty" maxLength:"512" qiao:"secrets.encoding_aes_key" doc:"event callback EncodingAESKey (write-only)"`
	Proxies             *string `json:"proxies,omitempty" maxLength:"2048" qiao:"secrets.proxies" doc:"egress proxies, comma-separated URLs with user and password (write-only)"`
}

// DingTalkSettings are a DingTalk source's settings (federation/dingtalk), written like
// WeComSettings.
type DingTalkSettings struct {
	CorpID          *string `json:"corp_id,omitempty" maxLength:"128" qiao:"config.corp_id" doc:"CorpId"`
	AppKey          *string `json:"app_key,omitempty" maxLength:"128" qiao:"config.app_key" doc:"AppKey / Client ID"`
	AgentID         *string `json:"agent_id,omitempty" maxLength:"64" qiao:"config.agent_id"`
	Edition         *string `json:"edition,omitempty" enum:"standard,dedicated" qiao:"config.edition" doc:"standard, or dedicated (专属) with its own hosts"`
	CallbackDomain  *string `json:"callback_domain,omitempty" maxLength:"253" qiao:"config.callback_domain" doc:"the app's redirect domain: must be the external URL's host"`
	EventReceiveKey *string `json:"event_receive_key,omitempty" maxLength:"128" qiao:"config.event_receive_key"`
	OAPIBaseURL     *string `json:"oapi_base_url,omitempty" maxLength:"512" qiao:"config.oapi_base_url"`
	APIBaseURL      *string `json:"api_base_url,omitempty" maxLength:"512" qiao:"config.api_base_url"`
	LoginBaseURL    *string `json:"login_base_url,omitempty" maxLength:"512" qiao:"config.login_base_url"`
	RateLimit       *string `json:"rate_limit,omitempty" maxLength:"32" qiao:"config.rate_limit"`
	AppSecret       *string `json:"app_secret,omitempty" maxLength:"512" qiao:"secrets.app_secret" doc:"AppSecret / Client Secret (write-only)"`
	CallbackToken   *string `json:"callback_token,omitempty" maxLength:"512" qiao:"secrets.callback_token" doc:"event push token (write-only)"`
	AESKey          *string `json:"aes_key,omitempty" maxLength:"512" qiao:"secrets.aes_key" doc:"event push aes_key (write-only)"`
	Proxies         *string `json:"proxies,omitempty" maxLength:"2048" qiao:"secrets.proxies" doc:"egress proxies (write-only)"`
}

// setting is one field of a kind's settings struct.
type setting struct {
	index  int
	json   string // the field's JSON name
	key    string // the key in the source's config or secrets map
	secret bool
	isBool bool
}

func settingsOf(t reflect.Type) []setting {
	var out []setting
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("qiao")
		where, key, _ := strings.Cut(tag, ".")
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		out = append(out, setting{index: i, json: name, key: key, secret: where == "secrets", isBool: f.Type.Elem().Kind() == reflect.Bool})
	}
	return out
}

var (
	wecomFields    = settingsOf(reflect.TypeOf(WeComSettings{}))
	dingtalkFields = settingsOf(reflect.TypeOf(DingTalkSettings{}))
)

// kindSettings returns the settings struct of a write for the source's kind (nil when the write
// has none) with its fields and its JSON name.
func kindFields(kind directory.SourceKind) ([]setting, string) {
	switch kind {
	case directory.KindWeCom:
		return wecomFields, "wecom"
	case directory.KindDingTalk:
		return dingtalkFields, "dingtalk"
	}
	return nil, ""
}

// mask shows a secret's last four characters when it is long enough for that to give nothing
// away, and only bullets otherwise.
func mask(s string) string {
	if utf8.RuneCountInString(s) >= 16 {
		r := []rune(s)
		return "••••" + string(r[len(r)-4:])
	}
	return "••••"
}

// applySettings merges a write's settings (a *WeComSettings or *DingTalkSettings) into the
// source's maps: omitted fields stay, "" (or false) clears, a secret equal to its masked form
// stays.
func applySettings(v any, fields []setting, cfg, secrets map[string]string) {
	rv := reflect.ValueOf(v).Elem()
	for _, f := range fields {
		fv := rv.Field(f.index)
		if fv.IsNil() {
			continue
		}
		m := cfg
		if f.secret {
			m = secrets
		}
		var val string
		if f.isBool {
			if fv.Elem().Bool() {
				val = "true"
			}
		} else {
			val = fv.Elem().String()
		}
		if f.secret && val != "" && val == mask(secrets[f.key]) && secrets[f.key] != "" {
			continue
		}
		if val == "" {
			delete(m, f.key)
		} else {
			m[f.key] = val
		}
	}
}

// viewSettings fills a settings struct (pointer to WeComSettings or DingTalkSettings) from the
// source's maps, secrets masked.
func viewSettings(v any, fields []setting, cfg, secrets map[string]string) {
	rv := reflect.ValueOf(v).Elem()
	for _, f := range fields {
		m := cfg
		if f.secret {
			m = secrets
		}
		val, ok := m[f.key]
		if !ok || val == "" {
			continue
		}
		fv := rv.Field(f.index)
		if f.isBool {
			b := val == "true"
			fv.Set(reflect.ValueOf(&b))
			continue
		}
		if f.secret {
			val = mask(val)
		}
		fv.Set(reflect.ValueOf(&val))
	}
}

// fieldOfKey is the JSON path of a source map key ("config.corp_id") in a write.
func fieldOfKey(kind directory.SourceKind, key string) string {
	fields, name := kindFields(kind)
	where, k, _ := strings.Cut(key, ".")
	for _, f := range fields {
		if f.key == k && f.secret == (where == "secrets") {
			return "body." + name + "." + f.json
		}
	}
	if name == "" {
		return "body"
	}
	return "body." + name
}
