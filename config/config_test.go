package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadFullExample(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "slipway.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Repositories[0]
	if r.Poll.Duration != time.Minute || c.Repositories[1].Poll.Duration != 0 {
		t.Errorf("poll: %v, %v", r.Poll, c.Repositories[1].Poll)
	}
	abs, err := filepath.Abs("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(abs, "secrets", "git-password"); r.Auth.PasswordFile != want {
		t.Errorf("passwordFile %q not resolved against the config folder: want %s", r.Auth.PasswordFile, want)
	}
	if c.Repositories[1].Auth.SSHKeyFile != "/etc/slipway/id_ed25519" {
		t.Errorf("absolute path changed: %q", c.Repositories[1].Auth.SSHKeyFile)
	}
	if !c.HasCluster("seconddevops") || c.HasCluster("nope") || c.DefaultRegistry() != "hub.ecns.io" || c.ChartRepository() != "oci://hub.ecns.io/charts" {
		t.Errorf("environment accessors: %+v", c)
	}
}

func TestPolicyRulesCompileOnceAtLoad(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte(`dataDir: /d
policy:
  rules: [{name: no-lb, expression: "object.kind != 'Service'"}]
repositories:
  - name: r
    url: https://g/r.git
    branch: main
    policy: {rules: [{name: small, expression: "size(object) < 10", message: too big}]}
`))
	if err != nil {
		t.Fatal(err)
	}
	global, own := c.Policy.Rules[0], c.Repository("r").Policy.Rules[0]
	if global.Program == nil || own.Program == nil || global.At != "slipway.yaml:3:11" || own.At != "slipway.yaml:8:22" {
		t.Fatalf("rules not compiled or placed: %+v %+v", global, own)
	}
	if ok, err := global.Program.Eval(map[string]any{"kind": "Service"}); ok || err != nil {
		t.Errorf("compiled rule: %v %v", ok, err)
	}
	if c.Repository("nope") != nil || c.Repository("r").Policy.Clusters != nil {
		t.Error("Repository lookup")
	}
}

func TestDefaults(t *testing.T) {
	c, err := Parse("slipway.yaml", []byte("dataDir: /data\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.Builder.Type != "native" || c.Executor.Default != "" {
		t.Errorf("defaults: %+v", c)
	}
	c.resolve("/etc/slipway")
	if c.Store != "sqlite:///data/slipway.db" {
		t.Errorf("default store %q", c.Store)
	}
	if c.StoreKeyFiles != nil || c.DefaultStoreKeyFile() != "/data/store.key" {
		t.Errorf("store keys %q, default %q", c.StoreKeyFiles, c.DefaultStoreKeyFile())
	}
	c, err = Parse("slipway.yaml", []byte("dataDir: data\nstoreKeyFiles: [keys/new.key, /etc/slipway/old.key]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c.resolve("/etc/slipway")
	if want := []string{"/etc/slipway/keys/new.key", "/etc/slipway/old.key"}; strings.Join(c.StoreKeyFiles, " ") != strings.Join(want, " ") {
		t.Errorf("storeKeyFiles resolved to %q, want %q", c.StoreKeyFiles, want)
	}
}

func TestBadConfigs(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string
	}{
		{"empty", "", []string{"1:1: empty configuration: dataDir is required"}},
		{"inline password", "dataDir: /d\nrepositories:\n  - name: r\n    url: https://git.example.com/r.git\n    branch: main\n    auth: {username: me, password: hunter2}\n", []string{
			"6:11: auth needs usernameFile and passwordFile, tokenFile, or sshKeyFile and knownHostsFile",
			`6:12: unknown field "username": secrets are never written in slipway.yaml; put the value in a file and set usernameFile to its path`,
			`6:26: unknown field "password": secrets are never written in slipway.yaml; put the value in a file and set passwordFile to its path`,
		}},
		{"inline webhook secret and token", "dataDir: /d\nrepositories:\n  - name: r\n    url: https://g/r.git\n    branch: main\n    webhook: {type: github, secret: s}\n    forge: {type: gitea, url: https://g, token: t}\n", []string{
			`6:14: missing required field "secretFile"`,
			`6:29: unknown field "secret": secrets are never written in slipway.yaml; put the value in a file and set secretFile to its path`,
			`7:12: missing required field "tokenFile"`,
			`7:42: unknown field "token": secrets are never written in slipway.yaml; put the value in a file and set tokenFile to its path`,
		}},
		{"password in URLs", "dataDir: /d\nstore: postgres://slipway:pw@db/slipway\nrepositories:\n  - {name: r, url: 'https://u:p@g/r.git', branch: main}\n", []string{
			"2:8: store URL contains a password: secrets are never written in slipway.yaml; put it in a file and set storePasswordFile",
			"4:20: url contains a password: secrets are never written in slipway.yaml; use auth.passwordFile or auth.tokenFile",
		}},
		{"unknown field and wrong type", "dataDir: /d\nlisten: 8080\nregistries: {}\n", []string{
			`2:9: listen "8080" must be host:port or :port, such as :8080`,
			`3:1: unknown field "registries" (did you mean "registry"?)`,
		}},
		{"duplicate names and bad clusters", "dataDir: /d\nclusters:\n  - {name: a, inCluster: true, context: x}\n  - {name: a}\n  - {name: B_C, kubeconfig: k}\n", []string{
			`3:5: cluster "a": inCluster uses the pod's service account; remove kubeconfig and context`,
			`4:5: cluster "a" needs kubeconfig (with an optional context) or inCluster: true`,
			`4:12: cluster name "a" is used twice`,
			`5:12: cluster name "B_C" is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters`,
		}},
		{"ssh auth mismatches", "dataDir: /d\nrepositories:\n  - {name: a, url: 'git@g:a.git', branch: main, auth: {tokenFile: t}}\n  - {name: b, url: 'https://g/b.git', branch: main, auth: {sshKeyFile: k}}\n", []string{
			"3:55: an SSH url needs sshKeyFile and knownHostsFile",
			"4:59: auth needs knownHostsFile with sshKeyFile: Slipway never trusts an unknown host key",
		}},
		{"builder and executor", "dataDir: /d\nbuilder: {type: buildkit}\nexecutor: {default: kubernetes, kubernetes: {cluster: nope, namespace: jobs}}\nwebhook: {}\n", []string{
			"2:10: builder type buildkit needs address, such as unix:///run/buildkit/buildkitd.sock or tcp://buildkitd:1234",
			`3:55: executor kubernetes cluster "nope" is not in clusters (configured: none)`,
			`4:1: unknown field "webhook" (did you mean "webhooks"?)`,
		}},
		{"kubernetes executor", "dataDir: /d\nclusters: [{name: ci, kubeconfig: /k}]\nexecutor:\n  kubernetes:\n    cluster: ci\n    namespace: Jobs\n    serviceAccount: 'a b'\n    nodeSelector: {'bad key!': x, pool: 'no spaces'}\n    tolerations:\n      - {operator: Equal, value: x}\n      - {key: dedicated, operator: Exists, value: ci}\n      - {key: ok.example.com/pool, value: scripts, effect: NoSchedule}\n", []string{
			`6:16: executor kubernetes namespace "Jobs" is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters`,
			`7:21: executor kubernetes serviceAccount "a b": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
			`8:19: nodeSelector key "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
			`8:19: nodeSelector pool value "no spaces": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
			`10:9: a toleration without key matches every taint only with operator: Exists`,
			`11:51: a toleration with operator Exists matches any value; remove value "ci"`,
		}},
		{"enums and registries", "dataDir: /d\nbuilder: {type: docker}\nregistry: {default: 'https://hub.example.com', insecure: ['a b']}\ncharts: {repository: 'https://charts'}\n", []string{
			`2:17: type: "docker" is not one of native, buildkit`,
			`3:21: registry "https://hub.example.com" must be a host name with an optional port, such as hub.example.com:5000`,
			`3:59: insecure registry "a b" must be a host name with an optional port`,
			`4:22: charts.repository "https://charts" must be an OCI URL: oci://HOST[:PORT]/PATH`,
		}},
		{"registry mirrors", "dataDir: /d\nregistry:\n  mirrors:\n    - {registry: docker.io, endpoint: '127.0.0.1:5000'}\n    - {registry: index.docker.io, endpoint: 'http://m'}\n    - {registry: 'a/b', endpoint: a}\n    - {registry: hub.example.com, endpoint: hub.example.com}\n", []string{
			`5:18: registry index.docker.io has a mirror already (registry.mirrors[0])`,
			`5:45: "http://m" must be a host name with an optional port, such as hub.example.com:5000`,
			`6:18: "a/b" must be a host name with an optional port, such as hub.example.com:5000`,
			`7:45: endpoint hub.example.com is the registry itself`,
		}},
		{"missing required and two documents", "listen: ':1'\n---\ndataDir: /x\n", []string{
			"1:1: missing required field \"dataDir\"",
			"3:1: slipway.yaml holds one YAML document, not 2",
		}},
		{"store keys", "dataDir: /d\nstoreKeyFiles: [a.key, '', a.key]\nstoreKey: s3cr3t\n", []string{
			`2:24: storeKeyFiles entry 2 is empty: give the path of a key file`,
			`2:28: key file "a.key" is listed twice (also entry 1)`,
			`3:1: unknown field "storeKey": secrets are never written in slipway.yaml; put the value in a file and set storeKeyFiles to its path`,
		}},
		{"empty store keys", "dataDir: /d\nstoreKeyFiles: []\n", []string{
			`2:16: storeKeyFiles is empty: list at least one key file, or remove it to use DATADIR/store.key`,
		}},
		{"bad poll", "dataDir: /d\nrepositories:\n  - {name: r, url: 'https://g/r.git', branch: refs/heads/main, poll: often}\n", []string{
			`3:47: branch "refs/heads/main" must be a plain branch name, such as main`,
			`3:70: poll: invalid duration "often": use a number with a unit, such as 30s or 5m`,
		}},
		{"branch and branches together", "dataDir: /d\nrepositories:\n  - {name: r, url: 'https://g/r.git', branch: main, branches: [main]}\n", []string{
			`3:63: set branch or branches, not both: branch: main is the same as branches: [main]`,
		}},
		{"neither branch nor branches", "dataDir: /d\nrepositories:\n  - {name: r, url: 'https://g/r.git'}\n", []string{
			`3:5: repository "r" needs branch (the tracked branch) or branches (several, e.g. [main, release/*])`,
		}},
		{"bad branches", "dataDir: /d\nrepositories:\n  - {name: r, url: 'https://g/r.git', branches: ['release/*', '', refs/heads/x, 'a[', 'release/*']}\n", []string{
			`3:50: the first branch "release/*" is the default branch (schedules and manual runs use it) and must be a plain name, such as main`,
			`3:63: empty branch`,
			`3:67: branch "refs/heads/x" must be a branch name or glob, such as main or release/*`,
			`3:81: invalid branch glob "a[": check its brackets and braces`,
			`3:87: branch "release/*" is listed twice`,
		}},
		{"empty branches", "dataDir: /d\nrepositories:\n  - {name: r, url: 'https://g/r.git', branches: []}\n", []string{
			`3:49: branches is empty: list at least the default branch, such as [main]`,
		}},
		{"policy grants", `dataDir: /d
clusters: [{name: prod, inCluster: true}]
repositories:
  - name: r
    url: https://g/r.git
    branch: main
    policy:
      clusters: [prod, staging, 'prod-*', Prod_1]
      namespaces: ['*', 'a/b']
      registries: ['*', hub.example.com:5000/team, 'https://hub.example.com', nginx, 'hub.example.com/Team']
`, []string{
			`8:24: cluster "staging" is not defined under clusters`,
			`8:43: cluster "Prod_1" must be a name (lowercase letters, digits and '-') where * matches any run of characters, such as prod-* or *`,
			`9:25: namespace "a/b" must be a name (lowercase letters, digits and '-') where * matches any run of characters, such as prod-* or *`,
			`10:52: registry "https://hub.example.com" must be HOST[:PORT][/PATH] (such as hub.example.com or hub.example.com:5000/team), or * for any; Docker Hub is docker.io`,
			`10:79: registry "nginx" must be HOST[:PORT][/PATH] (such as hub.example.com or hub.example.com:5000/team), or * for any; Docker Hub is docker.io`,
			`10:86: registry "hub.example.com/Team" must be HOST[:PORT][/PATH] (such as hub.example.com or hub.example.com:5000/team), or * for any; Docker Hub is docker.io`,
		}},
		{"secret and push grants", `dataDir: /d
clusters: [{name: prod, inCluster: true}]
repositories:
  - name: r
    url: https://g/r.git
    branch: main
    policy:
      push: [hub.example.com/shop, 'oci://hub.example.com/charts']
      secrets:
        kubernetes:
          - {cluster: prod, namespace: 'shop-*', name: 'shop.db-*'}
          - {cluster: staging, namespace: A, name: 'x/y'}
          - {cluster: '*', namespace: '*'}
        files: [/etc/slipway/shop, etc/shop, /etc/shop/../x, /]
`, []string{
			`8:36: registry "oci://hub.example.com/charts" must be HOST[:PORT][/PATH] (such as hub.example.com or hub.example.com:5000/team), or * for any; Docker Hub is docker.io`,
			`12:23: cluster "staging" is not defined under clusters`,
			`12:43: namespace "A" must be a name (lowercase letters, digits and '-') where * matches any run of characters, such as prod-* or *`,
			`12:52: Secret name "x/y" must be a name (lowercase letters, digits, '-' and '.') where * matches any run of characters, such as shop-db or shop-*`,
			`13:13: missing required field "name"`,
			`14:36: folder "etc/shop" must be an absolute path, such as /etc/slipway/secrets/shop`,
			`14:46: folder "/etc/shop/../x" is not clean: write /etc/x`,
			`14:62: folder / would grant every file on the daemon's host (its API token, kubeconfigs, Git credentials); grant a folder that holds only this repository's secrets`,
		}},
		{"policy rules", `dataDir: /d
policy:
  rules:
    - {name: no-lb, expression: "object.kind != 'Service' ||"}
    - {name: allowed-clusters, expression: "true"}
    - {name: typo, expression: "objekt.kind == 'Pod'", message: m}
repositories:
  - name: r
    url: https://g/r.git
    branch: main
    policy:
      rules:
        - {name: no-lb, expression: "object.metadata.name"}
        - {name: x}
`, []string{
			`4:33: rule "no-lb": CEL expression does not compile: column 28: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}`,
			`5:14: rule name "allowed-clusters" is a built-in rule's; choose another`,
			`6:32: rule "typo": CEL expression does not compile: column 1: undeclared reference to 'objekt' (in container '')`,
			`13:18: rule name "no-lb" is used twice (repositories' rules add to policy.rules, so their names must differ too)`,
			`14:11: missing required field "expression"`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("slipway.yaml", []byte(tc.yaml))
			var got []string
			if err != nil {
				for _, l := range strings.Split(err.Error(), "\n") {
					got = append(got, strings.TrimPrefix(l, "slipway.yaml:"))
				}
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}

func TestTrackedBranches(t *testing.T) {
	one := Repository{Branch: "main"}
	many := Repository{Branches: []string{"main", "release/*"}}
	if one.DefaultBranch() != "main" || many.DefaultBranch() != "main" {
		t.Errorf("default branches %q, %q; want main", one.DefaultBranch(), many.DefaultBranch())
	}
	for _, tc := range []struct {
		r      Repository
		branch string
		want   bool
	}{
		{one, "main", true}, {one, "dev", false},
		{many, "main", true}, {many, "release/1.4", true}, {many, "release/1.4/rc", false}, {many, "feature/x", false},
	} {
		if got := tc.r.Tracks(tc.branch); got != tc.want {
			t.Errorf("%v tracks %q = %v, want %v", tc.r.BranchPatterns(), tc.branch, got, tc.want)
		}
	}
}
