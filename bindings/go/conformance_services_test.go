package rtm2

// The presence, storage and lock operations of the conformance scenarios.

import (
	"fmt"
	"strconv"
)

func (r *cfRunner) serviceOp(a *cfActor, s *cfStep) error {
	o := s.opts
	ct, err := cfChannelType(o)
	if err != nil {
		return err
	}
	arg := func(i int) string { return s.args[i] }
	check := func(what string, got, want any) error {
		if fmt.Sprint(got) != fmt.Sprint(want) {
			return cfErrorf("%s: got %v, expected %v", what, got, want)
		}
		return nil
	}
	p, st, lk := a.c.Presence(), a.c.Storage(), a.c.Lock()
	switch s.op {
	// -- presence
	case "set_state":
		ps, err := cfGenerated(o, "states")
		if err != nil {
			return cfErrorf("%v", err)
		}
		data := map[string]string{}
		for _, x := range ps {
			data[x.k] = x.v
		}
		return p.SetState(arg(0), ct, data)
	case "get_state":
		got, err := p.GetState(arg(0), ct, arg(1))
		if err != nil {
			return err
		}
		if want, ok := o["states"]; ok {
			return check("the state", cfCanonMap(got), cfCanon(cfList(want)))
		}
		return nil
	case "remove_state":
		var keys []string
		if v, ok := o["keys"]; ok {
			keys = cfList(v)
		}
		return p.RemoveState(arg(0), ct, keys)
	case "who_now":
		users, _, err := p.WhoNow(arg(0), ct, WithPresenceUserId(cfFlag(o, "include_user_id", true)),
			WithPresenceState(cfFlag(o, "include_state", false)))
		if err != nil {
			return err
		}
		if _, ok := o["total"]; ok {
			r.notChecked(s, "total", "WhoNow returns the users and the next page, not the total occupancy")
		}
		if want, ok := o["users"]; ok {
			return check("the users", cfCanon(cfKeys(users)), cfCanon(cfList(want)))
		}
		return nil
	case "where_now":
		chs, err := p.WhereNow(arg(0))
		if err != nil {
			return err
		}
		var got []string
		for _, c := range chs {
			got = append(got, cfName(cfChannelTypeNames, c.Type)+":"+c.Channel)
		}
		if want, ok := o["channels"]; ok {
			return check("the channels", cfCanon(got), cfCanon(cfList(want)))
		}
		return nil
	// -- storage
	case "set_channel_metadata", "update_channel_metadata", "remove_channel_metadata",
		"set_user_metadata", "update_user_metadata", "remove_user_metadata":
		return r.metadataWrite(a, s, ct)
	case "get_channel_metadata", "get_user_metadata":
		var major int64
		var items map[string]*MetadataItem
		if s.op == "get_channel_metadata" {
			major, items, err = st.GetChannelMetadata(arg(0), ct)
		} else {
			major, items, err = st.GetUserMetadata(arg(0))
		}
		if err != nil {
			return err
		}
		if want, ok := o["items"]; ok {
			if err := check("the items", cfItems(items), cfCanon(cfList(want))); err != nil {
				return err
			}
		}
		if want, ok := o["major"]; ok {
			if err := check("the major revision", major, want); err != nil {
				return err
			}
		}
		for _, x := range cfPairs(o["authors"]) {
			it := items[x.k]
			if it == nil {
				return cfErrorf("no item %s (for its author)", x.k)
			}
			if err := check("the author of "+x.k, it.Author, x.v); err != nil {
				return err
			}
		}
		for _, k := range cfList(o["stamped"]) {
			if it := items[k]; it == nil || it.UpdateTs == 0 {
				return cfErrorf("item %s has no update time: %+v", k, it)
			}
		}
		return nil
	case "subscribe_user_metadata":
		user := arg(0)
		snap, evs, err := st.SubscribeUserMetadata(user)
		if err != nil {
			return err
		}
		if a.newFeed("user/" + user) {
			a.q.push(cfStorageSnapshot(chKey{}, user, snap))
			cfForward(r, a, evs, func(e *StorageEvent) *cfEvent { return cfStorageEvent(chKey{}, user, e) })
		}
		return nil
	case "unsubscribe_user_metadata":
		err := st.UnsubscribeUserMetadata(arg(0))
		if err == nil {
			a.forgetFeeds(func(k string) bool { return k == "user/"+arg(0) })
		}
		return err
	// -- locks
	case "set_lock":
		var ttl uint64
		if v, ok := o["ttl"]; ok {
			if ttl, err = strconv.ParseUint(v, 10, 32); err != nil {
				return cfErrorf("bad ttl %q", v)
			}
		}
		// ttl 0: the default (10 s), as a set_lock without ttl= asks for.
		return lk.Set(arg(0), ct, arg(1), uint32(ttl))
	case "remove_lock":
		return lk.Remove(arg(0), ct, arg(1))
	case "acquire_lock":
		return <-lk.Acquire(arg(0), ct, arg(1), cfFlag(o, "retry", false))
	case "release_lock":
		return lk.Release(arg(0), ct, arg(1))
	case "revoke_lock":
		return lk.Revoke(arg(0), ct, arg(1), arg(2))
	case "get_locks":
		locks, err := lk.Get(arg(0), ct)
		if err != nil {
			return err
		}
		var got []string
		for _, d := range locks {
			got = append(got, d.Name+":"+d.Owner)
		}
		if want, ok := o["locks"]; ok {
			return check("the locks", cfCanon(got), cfCanon(cfList(want)))
		}
		return nil
	}
	return cfErrorf("unknown operation %s", s.op)
}

func (r *cfRunner) metadataWrite(a *cfActor, s *cfStep, ct ChannelType) error {
	o := s.opts
	revision, err := strconv.ParseInt(cfOr(o["revision"], "-1"), 10, 64)
	if err != nil {
		return cfErrorf("bad revision %q", o["revision"])
	}
	if revision == 0 {
		revision = RevisionAbsent // the scenario's "must not exist yet"
	}
	major, err := strconv.ParseInt(cfOr(o["major"], "-1"), 10, 64)
	if err != nil {
		return cfErrorf("bad major %q", o["major"])
	}
	data := map[string]*MetadataItem{}
	remove := s.op == "remove_channel_metadata" || s.op == "remove_user_metadata"
	if remove {
		for _, k := range cfList(o["keys"]) {
			data[k] = &MetadataItem{Key: k, Revision: revision}
		}
	} else {
		ps, err := cfGenerated(o, "items")
		if err != nil {
			return cfErrorf("%v", err)
		}
		for _, x := range ps {
			data[x.k] = &MetadataItem{Key: x.k, Value: x.v, Revision: revision}
		}
	}
	opts := []StorageOption{WithStorageMajorRev(major), WithStorageRecordTs(cfFlag(o, "record_ts", false)),
		WithStorageRecordAuthor(cfFlag(o, "record_author", false))}
	if l := o["lock"]; l != "" {
		opts = append(opts, WithStorageLock(l))
	}
	for _, f := range []string{"result_major", "total"} {
		if _, ok := o[f]; ok {
			r.notChecked(s, f, "the Go metadata writes return only an error, not the new major revision or item count")
		}
	}
	st, target := a.c.Storage(), s.args[0]
	switch s.op {
	case "set_channel_metadata":
		return st.SetChannelMetadata(target, ct, data, opts...)
	case "update_channel_metadata":
		return st.UpdateChannelMetadata(target, ct, data, opts...)
	case "remove_channel_metadata":
		return st.RemoveChannelMetadata(target, ct, data, opts...)
	case "set_user_metadata":
		return st.SetUserMetadata(target, data, opts...)
	case "update_user_metadata":
		return st.UpdateUserMetadata(target, data, opts...)
	}
	return st.RemoveUserMetadata(target, data, opts...)
}

func cfOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
