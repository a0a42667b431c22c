package pipeline

import (
	"errors"
	"strings"
	"testing"
)

const promotable = `name: shop
environments:
  - {name: dev, cluster: dev, namespace: shop-dev}
  - {name: staging, cluster: prod, namespace: shop-staging}
  - name: prod
    cluster: prod
    namespace: shop
    approval: {manual: {approvers: [alice]}}
stages:
  - name: build
    tasks:
      - {name: image, type: build-image, image: shop, tag: "${BUILD_ID}"}
  - name: deploy
    tasks:
      - {name: web, type: deploy-yaml, path: web, environment: dev}
      - {name: db, type: deploy-yaml, path: db, cluster: dev, namespace: db}
      - {name: api, type: deploy-chart, release: api, chartDir: api, environment: dev}
  - name: prod
    tasks:
      - {name: smoke, type: deploy-yaml, path: smoke, environment: prod}
`

func TestEnvironmentsResolveAndPromote(t *testing.T) {
	ps, err := Load("p.yaml", []byte(promotable), Options{})
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	web := p.Stages[1].Tasks[0].DeployYAML
	if web.Cluster != "dev" || web.Namespace != "shop-dev" {
		t.Errorf("web targets %s/%s, want dev/shop-dev", web.Cluster, web.Namespace)
	}
	if p.Stages[2].Approval == nil || p.Stages[2].Approval.Manual.Approvers[0] != "alice" {
		t.Errorf("the stage deploying to prod is not behind prod's gate: %+v", p.Stages[2].Approval)
	}
	if p.Stages[1].Approval != nil {
		t.Errorf("the dev stage got a gate: %+v", p.Stages[1].Approval)
	}
	// Policy errors about an environment's task point at the environment's lines.
	if got := p.Positions.Of("stages[1].tasks[0].cluster").Line; got != 3 {
		t.Errorf("web's cluster is at line %d, want 3 (the environment's)", got)
	}

	staging, from, err := p.Promotion("staging")
	if err != nil {
		t.Fatal(err)
	}
	if from != "dev" || len(staging.Stages) != 1 || staging.Stages[0].Name != "promote-to-staging" || staging.Stages[0].Approval != nil {
		t.Fatalf("promotion to staging: from %s, stages %+v", from, staging.Stages)
	}
	var got []string
	for _, task := range staging.Stages[0].Tasks {
		switch {
		case task.DeployYAML != nil:
			got = append(got, task.Name+"@"+task.DeployYAML.Environment+":"+task.DeployYAML.Cluster+"/"+task.DeployYAML.Namespace)
		case task.DeployChart != nil:
			got = append(got, task.Name+"@"+task.DeployChart.Environment+":"+task.DeployChart.Cluster+"/"+task.DeployChart.Namespace)
		}
	}
	if strings.Join(got, " ") != "web@staging:prod/shop-staging api@staging:prod/shop-staging" {
		t.Errorf("promoted tasks %v", got)
	}
	if web.Environment != "dev" || web.Namespace != "shop-dev" {
		t.Errorf("promoting changed the pipeline's own task: %+v", web)
	}
	if got := staging.Positions.Of("stages[0].tasks[1].release").Line; got != 17 {
		t.Errorf("the promoted api task's release is at line %d, want 17", got)
	}

	prod, _, err := p.Promotion("prod")
	if err != nil {
		t.Fatal(err)
	}
	if prod.Stages[0].Approval == nil {
		t.Error("the promotion to prod is not behind prod's gate")
	}
	// Nothing names staging: prod gets what runs deploy to dev, carried along.
	if n := len(prod.Stages[0].Tasks); n != 2 || prod.Stages[0].Tasks[0].DeployYAML.Namespace != "shop" {
		t.Errorf("promotion to prod holds %d tasks: %+v", n, prod.Stages[0].Tasks)
	}
	for _, to := range []string{"dev", "qa"} {
		if _, _, err := p.Promotion(to); !errors.Is(err, ErrPromotion) {
			t.Errorf("promotion to %s: %v", to, err)
		}
	}
}
