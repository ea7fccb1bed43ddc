package upstream

import (
	"fmt"
	"strconv"

	"github.com/qiao-gateway/qiao/federation"
)

// ParseRateLimit reads a source's config "rate_limit", the same for every platform: empty is the
// platform's published limit (0), "off" is none (-1: simulators with limits off in benchmarks),
// otherwise calls per second per API.
func ParseRateLimit(v string) (float64, error) {
	switch v {
	case "":
		return 0, nil
	case "off":
		return -1, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f <= 0 {
		return 0, &federation.SettingError{Key: "config.rate_limit", Reason: fmt.Sprintf("%q must be off or calls per second", v)}
	}
	return f, nil
}
