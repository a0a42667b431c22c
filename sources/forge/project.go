package forge

import (
	"fmt"
	"net/url"
	"strings"
)

// Project is a repository on a forge: OWNER/NAME, where a GitLab owner may be a nested
// group path (group/subgroup).
type Project struct {
	Owner string
	Name  string
}

func (p Project) String() string { return p.Owner + "/" + p.Name }

// ProjectPath reads the project a clone URL names: https://host[/prefix]/OWNER/NAME[.git],
// ssh://[user@]host[:port]/OWNER/NAME[.git] or user@host:OWNER/NAME[.git]. When the forge is
// served under a path prefix (forgeURL https://host/git), an HTTP clone URL under the same
// prefix loses it.
func ProjectPath(forgeURL, cloneURL string) (Project, error) {
	bad := func(why string) (Project, error) {
		return Project{}, fmt.Errorf("clone url %q does not name a forge project OWNER/NAME (%s); "+
			"use a URL such as https://git.example.com/OWNER/NAME.git or git@git.example.com:OWNER/NAME.git", cloneURL, why)
	}
	var host, path string
	if i := strings.Index(cloneURL, "://"); i >= 0 {
		u, err := url.Parse(cloneURL)
		if err != nil {
			return bad(err.Error())
		}
		if u.Host == "" {
			return bad("no host")
		}
		host, path = u.Host, u.Path
		if f, err := url.Parse(forgeURL); err == nil && f.Host == u.Host {
			prefix := strings.TrimSuffix(f.Path, "/")
			if prefix != "" && strings.HasPrefix(path, prefix+"/") {
				path = strings.TrimPrefix(path, prefix)
			}
		}
	} else {
		// scp-like: [user@]host:path
		at := strings.Index(cloneURL, "@")
		colon := strings.Index(cloneURL, ":")
		if colon < 0 || (at >= 0 && at > colon) || strings.Contains(cloneURL[:colon], "/") {
			return bad("neither a URL nor user@host:path")
		}
		host, path = cloneURL[at+1:colon], cloneURL[colon+1:]
	}
	if host == "" {
		return bad("no host")
	}
	path = strings.TrimSuffix(strings.Trim(path, "/"), ".git")
	parts := strings.Split(path, "/")
	if len(parts) < 2 {
		return bad("the path has fewer than two parts")
	}
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return bad("the path has an empty or dot part")
		}
	}
	return Project{Owner: strings.Join(parts[:len(parts)-1], "/"), Name: parts[len(parts)-1]}, nil
}

// flat refuses an owner with a "/" where the forge has no nested owners (Gitea, GitHub).
func (p Project) flat(forge string) error {
	if strings.Contains(p.Owner, "/") {
		return fmt.Errorf("%s projects are OWNER/NAME, but the clone url names %s: check the repository url and forge url", forge, p)
	}
	return nil
}
