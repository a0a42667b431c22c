package pipeline

// badInputs are mistakes users make and the exact errors (LINE:COL: message) they must get.
var badInputs = []struct {
	name string
	yaml string
	want []string
}{
	{
		"syntax error",
		`name: x
stages: [
`,
		[]string{
			"2:1: YAML syntax error: did not find expected node content",
		},
	},
	{
		"duplicate key",
		`name: a
name: b
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"2:1: duplicate key \"name\" (first defined at line 1)",
		},
	},
	{
		"unknown top-level field",
		`nmae: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"1:1: unknown field \"nmae\" (did you mean \"name\"?)",
			"1:1: missing required field \"name\"",
		},
	},
	{
		"stages is not a list",
		`name: demo
stages: build
`,
		[]string{
			"2:9: stages: expected a list, got \"build\"",
		},
	},
	{
		"missing name and stages",
		`description: nothing else
`,
		[]string{
			"1:1: missing required field \"name\"",
			"1:1: missing required field \"stages\"",
		},
	},
	{
		"invalid pipeline name",
		`name: Jack_2048
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"1:7: pipeline name \"Jack_2048\" is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters",
		},
	},
	{
		"empty file",
		`# only a comment
`,
		[]string{
			"1:1: no pipeline in file: expected a YAML mapping with name and stages",
		},
	},
	{
		"document is a list",
		`- name: a
- name: b
`,
		[]string{
			"1:1: expected a mapping of fields, got a list",
		},
	},
	{
		"duration without unit",
		`name: demo
timeout: 30 minutes
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"2:10: timeout: invalid duration \"30 minutes\": use a number with a unit, such as 90s, 30m or 1h30m",
		},
	},
	{
		"zero timeout",
		`name: demo
timeout: 0s
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"2:10: timeout must be greater than 0",
		},
	},
	{
		"duplicate pipeline names",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
---
name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"10:7: pipeline name \"demo\" is already used at line 1",
		},
	},
	{
		"unknown task type",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-imag
        image: app
`,
		[]string{
			"6:15: type: \"build-imag\" is not one of build-image, publish-chart, deploy-yaml, deploy-chart, script (did you mean \"build-image\"?)",
		},
	},
	{
		"missing task type",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        image: app
`,
		[]string{
			"5:9: missing required field \"type\"",
		},
	},
	{
		"missing variant fields",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
`,
		[]string{
			"5:9: missing required field \"image\" for type build-image",
			"5:9: missing required field \"tag\" for type build-image",
		},
	},
	{
		"field of another type",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
        chart: nginx
`,
		[]string{
			"9:9: unknown field \"chart\" for type build-image",
		},
	},
	{
		"duplicate task names",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
  - name: deploy
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"11:15: task name \"img\" is already used at line 5",
		},
	},
	{
		"duplicate stage names",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
  - name: build
    tasks:
      - name: img2
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"9:11: stage name \"build\" is already used at line 3",
		},
	},
	{
		"bad cron",
		`name: demo
triggers:
  schedules:
    - cron: '0 25 * * *'
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:13: invalid cron expression \"0 25 * * *\": end of range (25) above maximum (23): 25",
		},
	},
	{
		"cron with TZ",
		`name: demo
triggers:
  schedules:
    - cron: 'CRON_TZ=UTC 0 1 * * *'
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:13: cron \"CRON_TZ=UTC 0 1 * * *\": set the time zone with timezone, not in the expression",
		},
	},
	{
		"unknown time zone",
		`name: demo
triggers:
  schedules:
    - cron: '@daily'
      timezone: Asia/Shangai
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"5:17: unknown time zone \"Asia/Shangai\": use an IANA name such as Asia/Shanghai or UTC",
		},
	},
	{
		"bad concurrency",
		`name: demo
triggers:
  schedules:
    - cron: '@hourly'
      concurrency: forbidden
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"5:20: concurrency: \"forbidden\" is not one of allow, forbid, replace (did you mean \"forbid\"?)",
		},
	},
	{
		"bad branch glob",
		`name: demo
triggers:
  push:
    branches: ['release/[0-9']
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:16: invalid glob \"release/[0-9\": check its brackets and braces",
		},
	},
	{
		"path globs outside the repository",
		`name: demo
triggers:
  push:
    paths: ['/etc/**', '../other/**']
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:13: path glob \"/etc/**\" must be relative to the repository root (no leading /)",
			"4:24: path glob \"../other/**\" points outside the repository",
		},
	},
	{
		"branches is not a list",
		`name: demo
triggers:
  push:
    branches: {main: true}
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:15: branches: expected a list, got a mapping",
		},
	},
	{
		"bad variable names",
		`name: demo
variables:
  BUILD_ID: '1'
  my-var: x
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"3:3: variable \"BUILD_ID\" would hide the built-in variable of that name",
			"4:3: invalid variable name \"my-var\": use letters, digits and _, not starting with a digit",
		},
	},
	{
		"variable refers to a variable",
		`name: demo
variables:
  A: a
  B: ${A}-b
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:6: variable \"B\" refers to ${A}: variables may refer only to built-in variables (BUILD_ID, PIPELINE, GIT_COMMIT, GIT_SHORT_COMMIT, GIT_BRANCH, GIT_TAG, VERSION, TRIGGER, ENVIRONMENT)",
		},
	},
	{
		"secrets without or with two sources",
		`name: demo
secrets:
  - name: A
  - name: B
    secret: s
    key: k
    file: /run/b
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"3:5: secret \"A\" needs a source: secret and key (a Kubernetes Secret), or file",
			"4:5: secret \"B\" has both a Kubernetes Secret (secret, key) and a file; use one",
		},
	},
	{
		"relative secret file",
		`name: demo
secrets:
  - name: A
    file: secrets/a
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"4:11: secret file \"secrets/a\" must be an absolute path on the daemon's host",
		},
	},
	{
		"undefined variable",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_IDD}
`,
		[]string{
			"8:14: undefined variable ${BUILD_IDD}: not a built-in variable, a declared variable or a secret (did you mean ${BUILD_ID}?)",
		},
	},
	{
		"output of a later task",
		`name: demo
stages:
  - name: build
    tasks:
      - name: run
        type: script
        image: alpine:3
        script: 'true'
        env: {IMG: '${tasks.img.image}'}
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"9:20: ${tasks.img.image}: task \"img\" runs later; only outputs of earlier tasks can be used",
		},
	},
	{
		"output of a parallel sibling",
		`name: demo
stages:
  - name: build
    parallel: true
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
      - name: run
        type: script
        image: alpine:3
        script: 'true'
        env: {IMG: '${tasks.img.image}'}
`,
		[]string{
			"14:20: ${tasks.img.image}: task \"img\" runs in parallel with this one (stage \"build\" is parallel)",
		},
	},
	{
		"output of no such task",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
      - name: run
        type: script
        image: alpine:3
        script: 'true'
        env: {IMG: '${tasks.imgg.image}', D: '${tasks.img}'}
`,
		[]string{
			"13:20: ${tasks.imgg.image}: no task \"imgg\" in this pipeline",
			"13:46: ${tasks.img}: task outputs are written ${tasks.<task>.<output>}",
		},
	},
	{
		"output a task does not have",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
      - name: run
        type: script
        image: alpine:3
        script: 'true'
        env: {V: '${tasks.img.version}'}
`,
		[]string{
			"13:18: ${tasks.img.version}: a build-image task has no output \"version\"; it has digest, image",
		},
	},
	{
		"unterminated reference",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID
`,
		[]string{
			"8:14: unterminated ${: missing }",
		},
	},
	{
		"reference in a field that takes none",
		`name: demo
stages:
  - name: build
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: ${NS}
`,
		[]string{
			"9:20: namespace does not take ${...} references",
		},
	},
	{
		"paths outside the repository",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        dockerfile: /etc/Dockerfile
        context: src/../../..
        image: app
        tag: v1
`,
		[]string{
			"7:21: dockerfile \"/etc/Dockerfile\" must be a relative path with / separators, from the repository root",
			"8:18: context \"src/../../..\" points outside the repository",
		},
	},
	{
		"tag invalid after substitution",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: alpha/${BUILD_ID}
`,
		[]string{
			"8:14: tag \"alpha/${BUILD_ID}\" (with ${BUILD_ID}=42) is not a valid image tag: up to 128 letters, digits, '_', '.', '-', not starting with '.' or '-'",
		},
	},
	{
		"image with registry and uppercase",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: hub.example.com/Devops/app:v1
        tag: v${BUILD_ID}
`,
		[]string{
			"7:16: image \"hub.example.com/Devops/app:v1\" must be lowercase letters, digits and . _ - separators, with / between levels; put the registry in registry and the tag in tag",
		},
	},
	{
		"chart version is not SemVer",
		`name: demo
stages:
  - name: build
    tasks:
      - name: chart
        type: publish-chart
        chartDir: nginx
        chart: nginx
        version: 6.0.1.${BUILD_ID}
`,
		[]string{
			"9:18: version \"6.0.1.${BUILD_ID}\" (\"6.0.1.42\" with ${BUILD_ID}=42) is not a SemVer 2 version such as 6.0.1-alpha.42: invalid characters in version",
		},
	},
	{
		"deploy-chart with chart and chartDir",
		`name: demo
stages:
  - name: build
    tasks:
      - name: app
        type: deploy-chart
        release: nginx
        chart: nginx
        chartDir: charts/nginx
        cluster: prod
        namespace: web
`,
		[]string{
			"9:19: use either chart (from the chart repository) or chartDir (from the repository checkout), not both",
		},
	},
	{
		"deploy-chart without a chart source",
		`name: demo
stages:
  - name: build
    tasks:
      - name: app
        type: deploy-chart
        release: Nginx_Release
        cluster: prod
        namespace: web
`,
		[]string{
			"5:9: deploy-chart needs chart and version (from the chart repository) or chartDir (from the repository checkout)",
			"7:18: release \"Nginx_Release\" is not a valid Helm release name: use lowercase letters, digits and '-', start and end with a letter or digit, at most 53 characters",
		},
	},
	{
		"secretEnv names an undeclared secret",
		`name: demo
secrets:
  - name: HUB_PASSWORD
    file: /run/secrets/hub
stages:
  - name: build
    tasks:
      - name: login
        type: script
        image: alpine:3
        script: docker login -p "$PASSWORD"
        env: {PASSWORD: x}
        secretEnv: {PASSWORD: HUB_PASSWROD}
`,
		[]string{
			"13:21: environment variable \"PASSWORD\" is set in both env and secretEnv",
			"13:31: secretEnv PASSWORD: \"HUB_PASSWROD\" is not a declared secret (did you mean \"HUB_PASSWORD\"?)",
		},
	},
	{
		"environment mistakes",
		`name: env
variables: {DOMAIN: a.example}
environments:
  - name: dev
    cluster: dev
    namespace: shop-dev
    variables: {DOMAN: b, DOMAIN: "${NOPE}.example"}
  - name: dev
    cluster: prod
    namespace: Shop
    windows:
      - {kind: allow, cron: "61 * * * *", duration: 0s, timezone: Mars/Base}
  - name: prod
    cluster: prod
    namespace: shop
    approval: {manual: {approvers: [alice]}}
  - name: qa
    cluster: prod
    namespace: qa
    approval: {manual: {approvers: [bob]}}
stages:
  - name: deploy
    approval: {manual: {approvers: [carol]}}
    tasks:
      - {name: a, type: deploy-yaml, path: a, environment: prd}
      - {name: b, type: deploy-yaml, path: b, environment: dev, cluster: dev}
      - {name: c, type: deploy-yaml, path: c, environment: prod}
  - name: both
    tasks:
      - {name: d, type: deploy-yaml, path: d, environment: prod}
      - {name: e, type: deploy-chart, release: e, chartDir: e, environment: qa}
      - {name: f, type: deploy-yaml, path: f}
`,
		[]string{
			"7:17: environment variable \"DOMAN\" is not declared in the pipeline's variables: declare it there with its default value",
			"7:35: variable \"DOMAIN\" refers to ${NOPE}: variables may refer only to built-in variables (BUILD_ID, PIPELINE, GIT_COMMIT, GIT_SHORT_COMMIT, GIT_BRANCH, GIT_TAG, VERSION, TRIGGER, ENVIRONMENT)",
			"8:11: environment name \"dev\" is already used at line 4",
			"10:16: namespace \"Shop\" is not a DNS-1123 label: use lowercase letters, digits and '-', start and end with a letter or digit, at most 63 characters",
			"12:29: invalid cron expression \"61 * * * *\": end of range (61) above maximum (59): 61",
			"12:53: duration must be greater than 0",
			"12:67: unknown time zone \"Mars/Base\": use an IANA name such as Asia/Shanghai or UTC",
			"25:60: unknown environment \"prd\": the pipeline's environments are \"dev\", \"dev\", \"prod\", \"qa\" (did you mean \"prod\"?)",
			"26:74: give environment or cluster, not both: the environment \"dev\" sets the cluster",
			"27:60: environment \"prod\" has its own approval and so does stage \"deploy\": keep one (the environment's gate guards every deploy to it)",
			"28:11: stage \"both\" deploys to environments \"prod\", \"qa\", each with its own approval: put their deploys in separate stages",
			"32:9: missing required field \"cluster\" for type deploy-yaml (or environment)",
			"32:9: missing required field \"namespace\" for type deploy-yaml (or environment)",
		},
	},
	{
		"approval without a kind",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
  - name: prod
    approval:
      timeout: 1h
    tasks:
      - name: img2
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"11:7: approval needs pullRequest, manual or both",
		},
	},
	{
		"approvals below one",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
  - name: prod
    approval:
      pullRequest:
        approvals: 0
      manual: {approvers: []}
    tasks:
      - name: img2
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"12:20: approvals must be at least 1",
			"13:27: approvers must name at least one user or team",
		},
	},
	{
		"wrong scalar types",
		`name: demo
stages:
  - name: build
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: web
        wait: true
        prune: 'yes'
        pinImages: 1
`,
		[]string{
			"10:15: wait: expected a duration (such as 90s, 30m, 1h30m), got a boolean (true)",
			"11:16: prune: expected a boolean (true or false), got \"yes\"",
			"12:20: pinImages: expected a boolean (true or false), got an integer (1)",
		},
	},
	{
		"stability window longer than the wait",
		`name: demo
stages:
  - name: deploy
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: web
        wait: 30s
        stableFor: 1m
      - name: quick
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: web
        wait: 10s
      - name: nowait
        type: deploy-chart
        release: web
        chartDir: chart
        cluster: prod
        namespace: web
        wait: 0s
        stableFor: 20s
`,
		[]string{
			"11:20: stableFor 1m0s must be shorter than wait 30s: the window is part of the health wait, which must also leave time for the objects to become healthy",
			"17:15: wait 10s leaves no time for the stability window (stableFor, default 10s): make wait longer, or set stableFor shorter (0 turns the window off)",
			"25:20: stableFor 20s needs a health wait, but wait is 0: set wait longer than stableFor, or leave stableFor out",
		},
	},
	{
		"health watch rollback without automatic rollback, and on a chart",
		`name: demo
stages:
  - name: deploy
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: web
        rollback: manual
        healthWatch: rollback
      - name: chart
        type: deploy-chart
        release: web
        chartDir: chart
        cluster: prod
        namespace: web
        healthWatch: rollback
`,
		[]string{
			"11:22: healthWatch: rollback needs rollback: auto (this task has rollback: manual)",
			"18:22: healthWatch: \"rollback\" is not one of report, off",
		},
	},
	{
		"merge key",
		`name: demo
base: &b {timeout: 1h}
<<: *b
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
`,
		[]string{
			"2:1: unknown field \"base\"",
			"3:1: merge keys (<<) are not supported; write the fields out",
		},
	},
	{
		"negative keep and bad platform",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID}
        keep: -1
        platform: linux
`,
		[]string{
			"9:15: keep must be 0 (keep every tag) or more",
			"10:19: platform \"linux\" must be os/arch or os/arch/variant, such as linux/amd64 or linux/arm64/v8",
		},
	},
	{
		"repository is not oci",
		`name: demo
stages:
  - name: build
    tasks:
      - name: chart
        type: publish-chart
        chartDir: nginx
        chart: nginx
        version: 1.0.0
        repository: https://charts.example.com
`,
		[]string{
			"10:21: repository \"https://charts.example.com\" must be an OCI URL: oci://HOST[:PORT]/PATH",
		},
	},
	{
		"script image is not a reference",
		`name: demo
stages:
  - name: build
    tasks:
      - name: run
        type: script
        image: Hub.Example.com/Tools:v1
        script: make
`,
		[]string{
			"7:16: image \"Hub.Example.com/Tools:v1\" is not a valid image reference: use lowercase REGISTRY/PATH:TAG or PATH@sha256:DIGEST",
		},
	},
	{
		"driftIgnore path is not a JSON pointer",
		`name: demo
stages:
  - name: build
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: web
        driftIgnore:
          - kind: deployment
            paths: [spec.replicas]
`,
		[]string{
			"11:19: kind \"deployment\" must be a Kubernetes kind such as Deployment",
			"12:21: \"spec.replicas\" is not a JSON pointer: it must start with /, such as /spec/replicas",
		},
	},
	{
		"stage without tasks",
		`name: demo
stages:
  - name: build
    tasks: []
`,
		[]string{
			"4:12: stage \"build\" has no tasks",
		},
	},
	{
		"rollback enum",
		`name: demo
stages:
  - name: build
    tasks:
      - name: app
        type: deploy-yaml
        path: app.yaml
        cluster: prod
        namespace: web
        rollback: automatic
        drift: fix
`,
		[]string{
			"10:19: rollback: \"automatic\" is not one of auto, manual",
			"11:16: drift: \"fix\" is not one of correct, report, off",
		},
	},
	{
		"env and secretEnv set the same name",
		`name: demo
secrets:
  - name: TOKEN
    file: /run/token
stages:
  - name: build
    tasks:
      - name: run
        type: script
        image: alpine:3
        script: make
        env: {TOKEN: x, 1BAD: y}
        secretEnv: {TOKEN: TOKEN}
`,
		[]string{
			"12:25: environment variable name \"1BAD\": use letters, digits and _, not starting with a digit",
			"13:21: environment variable \"TOKEN\" is set in both env and secretEnv",
		},
	},
	{
		"unsupported substitution operator",
		`name: demo
stages:
  - name: build
    tasks:
      - name: img
        type: build-image
        image: app
        tag: v${BUILD_ID:=1}
`,
		[]string{
			"8:14: ${BUILD_ID:=1}: unsupported operator in \"BUILD_ID:=1\": only :- (default) is supported",
		},
	},
}
