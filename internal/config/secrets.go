package config

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Secrets need not be written in the file itself, so that config.yaml can be committed:
//
//   - ${NAME} in a secret's value is replaced by the environment variable NAME (secret:
//     ${WECOM_SECRET}, storage: postgres://qiao:${PGPASSWORD}@db/qiao). An unset or empty
//     variable is an error naming the key. Only ${NAME} is replaced ($NAME and $$ are left as
//     they are, so a secret holding a lone $ keeps it).
//   - KEY_file names a file holding the secret instead (secret_file: /run/secrets/wecom); a
//     relative path is from the config file's directory; one trailing newline is dropped. Giving
//     both KEY and KEY_file is an error.
//
// That holds for every secret: the values of a source's secrets map, a client's secret
// (secret_file), master_key (master_key_file), and the storage and state DSNs (${NAME} only, for
// their passwords). Values are resolved when the file is loaded and never logged.

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// maxSecretFile bounds what a KEY_file may hold.
const maxSecretFile = 64 << 10

// expand replaces each ${NAME} of v by the variable's value.
func expand(key, v string, env func(string) string) (string, error) {
	var missing string
	out := envRef.ReplaceAllStringFunc(v, func(ref string) string {
		name := envRef.FindStringSubmatch(ref)[1]
		val := ""
		if env != nil {
			val = env(name)
		}
		if val == "" && missing == "" {
			missing = name
		}
		return val
	})
	if missing != "" {
		return "", &Error{key, fmt.Sprintf("refers to the environment variable ${%s}, which is not set (or empty)", missing)}
	}
	return out, nil
}

// readSecretFile reads the secret a KEY_file names.
func readSecretFile(key, path, base string) (string, error) {
	if path == "" {
		return "", &Error{key, "names no file"}
	}
	if !filepath.IsAbs(path) && base != "" {
		path = filepath.Join(base, path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", &Error{key, fmt.Sprintf("cannot read the secret file: %v", err)}
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", &Error{key, fmt.Sprintf("cannot read the secret file %s: %v", path, err)}
	}
	if len(b) > maxSecretFile {
		return "", &Error{key, fmt.Sprintf("the secret file %s is larger than 64 KiB", path)}
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", &Error{key, fmt.Sprintf("the secret file %s is empty", path)}
	}
	return s, nil
}

// resolveOne sets *v from its ${NAME} references or, when file is set, from the file; at names
// the value's key (the file's key is at + "_file").
func resolveOne(at string, v *string, file, base string, env func(string) string) error {
	if file != "" {
		if *v != "" {
			return &Error{at + "_file", "give " + lastKey(at) + " or " + lastKey(at) + "_file, not both"}
		}
		s, err := readSecretFile(at+"_file", file, base)
		if err != nil {
			return err
		}
		*v = s
		return nil
	}
	s, err := expand(at, *v, env)
	if err != nil {
		return err
	}
	*v = s
	return nil
}

func lastKey(at string) string {
	if i := strings.LastIndexByte(at, '.'); i >= 0 {
		return at[i+1:]
	}
	return at
}

// resolveSecrets replaces every secret reference of the file by the secret (base: the config
// file's directory).
func (c *Config) resolveSecrets(base string, env func(string) string) error {
	if err := resolveOne("master_key", &c.MasterKey, c.MasterKeyFile, base, env); err != nil {
		return err
	}
	c.MasterKeyFile = ""
	for _, dsn := range []struct {
		key string
		v   *string
	}{{"storage", &c.Storage}, {"state", &c.State}} {
		s, err := expand(dsn.key, *dsn.v, env)
		if err != nil {
			return err
		}
		*dsn.v = s
	}
	for i := range c.Enterprises {
		e := &c.Enterprises[i]
		for j := range e.Sources {
			s := &e.Sources[j]
			at := fmt.Sprintf("enterprises[%d].sources[%d].secrets", i, j)
			names := make([]string, 0, len(s.Secrets))
			for k := range s.Secrets {
				names = append(names, k)
			}
			sort.Strings(names) // the first problem reported is always the same one
			resolved := make(map[string]string, len(s.Secrets))
			for _, k := range names {
				v := s.Secrets[k]
				if name, ok := strings.CutSuffix(k, "_file"); ok && name != "" {
					if _, both := s.Secrets[name]; both {
						return &Error{at + "." + k, "give " + name + " or " + k + ", not both"}
					}
					sv, err := readSecretFile(at+"."+k, v, base)
					if err != nil {
						return err
					}
					resolved[name] = sv
					continue
				}
				sv, err := expand(at+"."+k, v, env)
				if err != nil {
					return err
				}
				resolved[k] = sv
			}
			if s.Secrets != nil {
				s.Secrets = resolved
			}
		}
		if err := e.Provisioning.resolveSecrets(fmt.Sprintf("enterprises[%d].provisioning.secrets", i), base, env); err != nil {
			return err
		}
		for j := range e.Clients {
			cl := &e.Clients[j]
			if err := resolveOne(fmt.Sprintf("enterprises[%d].clients[%d].secret", i, j), &cl.Secret, cl.SecretFile, base, env); err != nil {
				return err
			}
			cl.SecretFile = ""
		}
	}
	return nil
}
