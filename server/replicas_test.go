package server

import (
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/replicas"
)

type fixedReplicas replicas.Status

func (f fixedReplicas) Status() replicas.Status {
	st := replicas.Status(f)
	st.Members = slices.Clone(st.Members)
	return st
}

func TestReplicasShowsOwnersOfTheCallersRepositories(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	st := replicas.Status{Identity: "b", Unowned: []string{"team-x", "app"}, Members: []replicas.Member{
		{Identity: "a", RenewTime: at, Expires: at.Add(15 * time.Second), Repositories: []string{"app", "web"}},
		{Identity: "b", Self: true, RenewTime: at, Expires: at.Add(15 * time.Second), Repositories: []string{"team-shop"}},
	}}
	rec := newRecorder()
	s := &Server{Triggers: rec, Records: rec, Metrics: rec, Replicas: fixedReplicas(st), Log: logrus.NewEntry(logrus.New()),
		Users: []config.APIUser{user("web-ops", []config.Role{config.RoleViewer}, "web", "team-*"),
			user("all", []config.Role{config.RoleViewer})}}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()

	var got struct {
		HA       bool
		Identity string
		Members  []replicas.Member
		Unowned  []string
	}
	if code := getJSON(t, srv, "/api/v1/replicas", "token-all", &got); code != 200 || !got.HA || got.Identity != "b" ||
		len(got.Members) != 2 || !got.Members[1].Self || !got.Members[0].Expires.Equal(at.Add(15*time.Second)) ||
		!slices.Equal(got.Members[0].Repositories, []string{"app", "web"}) {
		t.Fatalf("%d %+v", code, got)
	}
	got.Members = nil
	getJSON(t, srv, "/api/v1/replicas", "token-web-ops", &got)
	if !slices.Equal(got.Members[0].Repositories, []string{"web"}) || !slices.Equal(got.Members[1].Repositories, []string{"team-shop"}) ||
		!slices.Equal(got.Unowned, []string{"team-x"}) {
		t.Errorf("restricted caller sees %+v", got)
	}

	s.Replicas = nil
	srv2 := httptest.NewServer(s.Handler())
	defer srv2.Close()
	got.HA, got.Members = true, nil
	if code := getJSON(t, srv2, "/api/v1/replicas", "token-all", &got); code != 200 || got.HA || got.Members == nil || len(got.Members) != 0 {
		t.Errorf("one daemon: %d %+v", code, got)
	}
}

// Status lets the recorder stand for the replicas in the route tests.
func (r *recorder) Status() replicas.Status {
	r.calls = append(r.calls, "replicas status")
	return replicas.Status{}
}
