package sources

import (
	"net/url"
	"regexp"
	"strings"
)

// RedactURL strips userinfo (tokens are often put there, in the user or password part)
// and query values from a URL so it can be printed. scp-like addresses (git@host:path) are
// returned unchanged unless their user part carries a password.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		user, rest, ok := strings.Cut(raw, "@")
		if ok && strings.Contains(user, ":") {
			return rest
		}
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: fall back to cutting anything that looks like userinfo.
		return userinfoInURL.ReplaceAllString(raw, "$1")
	}
	u.User = nil
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"REDACTED"}
		}
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// urlPassword returns the password part of a URL's userinfo, or the user part when it is
// the only part (the token-as-user form https://TOKEN@host/...).
func urlPassword(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return ""
	}
	if p, ok := u.User.Password(); ok {
		return p
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		return u.User.Username()
	}
	return ""
}

var userinfoInURL = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@`)

// scrub removes secrets from a message: every URL's userinfo and every known secret
// value, in case a library or a server echoed them.
func scrub(msg string, secrets []string) string {
	msg = userinfoInURL.ReplaceAllString(msg, "$1")
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "***")
		}
	}
	return msg
}
