package server

import (
	"net/http"

	"github.com/slipwayhq/slipway/config"
	"github.com/slipwayhq/slipway/reconciler/replicas"
)

// Replicas reports the replicas and what each owns (*replicas.Coordinator).
type Replicas interface {
	Status() replicas.Status
}

// replicasAnswer is GET /replicas's answer.
type replicasAnswer struct {
	HA bool `json:"ha"`
	replicas.Status
}

// listReplicas says which replica watches which repository. A caller restricted to some
// repositories sees only those.
func (s *Server) listReplicas(w http.ResponseWriter, _ *http.Request, caller config.APIUser) {
	if s.Replicas == nil {
		writeJSON(w, http.StatusOK, replicasAnswer{Status: replicas.Status{Members: []replicas.Member{}, Unowned: []string{}}})
		return
	}
	st := s.Replicas.Status()
	keep := func(repos []string) []string {
		out := []string{}
		for _, r := range repos {
			if caller.MayAccess(r) {
				out = append(out, r)
			}
		}
		return out
	}
	for i := range st.Members {
		st.Members[i].Repositories = keep(st.Members[i].Repositories)
	}
	st.Unowned = keep(st.Unowned)
	writeJSON(w, http.StatusOK, replicasAnswer{HA: true, Status: st})
}
