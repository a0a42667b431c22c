package builder

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// owner resolves a --chown value: numbers as they are, names through the stage's
// /etc/passwd and /etc/group. A user without a group gets the user's own id as Docker does
// for numbers, and the user's primary group for names.
func (r *run) owner(st *stage, spec string) (owner, error) {
	user, group, hasGroup := strings.Cut(spec, ":")
	var passwd, groups map[string][2]int
	lookup := func() error {
		if passwd != nil {
			return nil
		}
		img, err := st.finish()
		if err != nil {
			return err
		}
		files, err := readImageFiles(img, func(n string) bool { return n == "etc/passwd" || n == "etc/group" })
		if err != nil {
			return err
		}
		passwd, groups = parseIDFile(files["etc/passwd"].data), parseIDFile(files["etc/group"].data)
		return nil
	}
	var o owner
	if uid, err := strconv.Atoi(user); err == nil {
		o = owner{uid: uid, gid: uid}
	} else {
		if err := lookup(); err != nil {
			return owner{}, fmt.Errorf("--chown=%s: %w", spec, err)
		}
		ids, ok := passwd[user]
		if !ok {
			return owner{}, fmt.Errorf("--chown=%s: no user %q in the image's /etc/passwd", spec, user)
		}
		o = owner{uid: ids[0], gid: ids[1]}
	}
	if !hasGroup {
		return o, nil
	}
	if gid, err := strconv.Atoi(group); err == nil {
		o.gid = gid
		return o, nil
	}
	if err := lookup(); err != nil {
		return owner{}, fmt.Errorf("--chown=%s: %w", spec, err)
	}
	ids, ok := groups[group]
	if !ok {
		return owner{}, fmt.Errorf("--chown=%s: no group %q in the image's /etc/group", spec, group)
	}
	o.gid = ids[0]
	return o, nil
}

// parseIDFile reads passwd (name:x:uid:gid:…) or group (name:x:gid:…) lines into
// name → [id, gid-or-0].
func parseIDFile(data []byte) map[string][2]int {
	out := map[string][2]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 3 {
			continue
		}
		id, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		gid := 0
		if len(f) > 3 {
			gid, _ = strconv.Atoi(f[3])
		}
		out[f[0]] = [2]int{id, gid}
	}
	return out
}
