package console

import (
	"encoding/json"
	"fmt"
	"time"
)

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

// funcs are the template functions for a page in lang.
func funcs(lang string) map[string]any {
	return map[string]any{
		"t":    func(s string) string { return tr(lang, s) },
		"lang": func() string { return lang },
		"str":  str,
		// when shows an API timestamp in the server's local time.
		"when": func(v any) string {
			t, err := time.Parse(time.RFC3339Nano, str(v))
			if err != nil {
				return str(v)
			}
			return t.Local().Format("2006-01-02 15:04:05")
		},
		// took is the time between two API timestamps (a task's start and finish).
		"took": func(from, to any) string {
			a, err1 := time.Parse(time.RFC3339Nano, str(from))
			b, err2 := time.Parse(time.RFC3339Nano, str(to))
			if err1 != nil || err2 != nil {
				return ""
			}
			return b.Sub(a).Round(time.Millisecond).String()
		},
		"kv": func(id string, v any) map[string]any { return map[string]any{"id": id, "value": str(v)} },
		// matchLabel names a match rule as the edit form's choice does.
		"matchLabel": func(s string) string {
			return map[string]string{"by userid": "by user ID", "by email": "by email", "by mobile": "by mobile"}[s]
		},
		"node": func(n any, src, cur any) map[string]any { return map[string]any{"n": n, "src": src, "cur": cur} },
		"list": func(v any) []any { l, _ := v.([]any); return l },
		"obj":  func(v any) map[string]any { m, _ := v.(map[string]any); return m },
		// kindName names an identity source's kind (the API's wecom, dingtalk, local) in words.
		"kindName": func(v any) string {
			switch s := str(v); s {
			case "wecom":
				return "WeCom"
			case "dingtalk":
				return "DingTalk"
			case "local":
				return "Custom directory"
			default:
				return s
			}
		},
		// clientType names an OIDC client's type (the API's web, native, service) in words.
		"clientType": func(v any) string {
			switch s := str(v); s {
			case "web":
				return "Web app"
			case "native":
				return "Native app"
			case "service":
				return "Service (machine to machine)"
			default:
				return s
			}
		},
		"counts": func(v any) string {
			m, _ := v.(map[string]any)
			s := ""
			for _, k := range sortedKeys(m) {
				if s != "" {
					s += " · "
				}
				s += fmt.Sprintf("%s %s", tr(lang, k), str(m[k]))
			}
			return s
		},
	}
}
