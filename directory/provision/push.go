package provision

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/qiao-gateway/qiao/directory"
	"github.com/qiao-gateway/qiao/federation"
)

// pusher makes the target match one enterprise's objects, one at a time.
type pusher struct {
	sc      *scope
	ps      directory.ProvisionStore
	w       federation.DirectoryWriter
	taskID  string
	dryRun  bool
	records []*directory.ProvisionRecord
	// ensuring guards the parent chain against a cycle in local data.
	ensuring map[string]bool
	// planned are the departments a dry run would create, by local key (a placeholder ID).
	planned map[string]string
}

func (p *pusher) ent() string { return p.sc.t.EnterpriseID }

func marshal(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	b, _ := json.Marshal(v)
	return b
}

func (p *pusher) record(typ, key, remote, action string, local, before, after json.RawMessage, err error) {
	r := &directory.ProvisionRecord{EnterpriseID: p.ent(), TaskID: p.taskID, ObjectType: typ, LocalKey: key, RemoteID: remote, Action: action,
		Local: local, Before: before, After: after}
	if err != nil {
		r.Error = err.Error()
		r.ErrCode = errCode(err)
	}
	p.records = append(p.records, r)
}

func errCode(err error) int {
	var pr *problem
	if errors.As(err, &pr) {
		return pr.Code
	}
	var fe *federation.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	return 0
}

func (p *pusher) object(ctx context.Context, typ, key string) (*directory.ProvisionedObject, error) {
	o, err := p.ps.GetProvisionedObject(ctx, p.ent(), typ, key)
	if errors.Is(err, directory.ErrNotFound) {
		return nil, nil
	}
	return o, err
}

// remoteDept returns the target's ID of a local department, creating it (and its parents) when
// qiao has not yet; "" key is the root department.
func (p *pusher) remoteDept(ctx context.Context, key string) (string, error) {
	if key == "" {
		return p.sc.t.Settings.RootDepartment, nil
	}
	if id, ok := p.planned[key]; ok {
		return id, nil
	}
	o, err := p.object(ctx, directory.ProvisionDepartment, key)
	if err != nil {
		return "", err
	}
	if o != nil && o.State == directory.ProvisionPresent && o.RemoteID != "" {
		return o.RemoteID, nil
	}
	if err := p.pushDept(ctx, key, false); err != nil {
		return "", err
	}
	if id, ok := p.planned[key]; ok {
		return id, nil
	}
	o, err = p.object(ctx, directory.ProvisionDepartment, key)
	if err != nil {
		return "", err
	}
	if o == nil || o.RemoteID == "" {
		return "", &problem{60003, fmt.Sprintf("department %s is not pushed (outside what the target pushes?)", key)}
	}
	return o.RemoteID, nil
}

// pushDept makes the target's department match the local one (or removes it); force updates
// even when what was pushed last already matches (the target drifted).
func (p *pusher) pushDept(ctx context.Context, key string, force bool) error {
	if p.ensuring[key] {
		return &problem{60010, "department " + key + " is its own ancestor in the local directory"}
	}
	p.ensuring[key] = true
	defer delete(p.ensuring, key)
	d, err := p.sc.dept(ctx, key)
	if err != nil {
		return err
	}
	in, err := p.sc.deptInScope(ctx, d)
	if err != nil {
		return err
	}
	o, err := p.object(ctx, directory.ProvisionDepartment, key)
	if err != nil {
		return err
	}
	if !in {
		return p.deleteDept(ctx, key, o, d)
	}
	name, parentKey, err := p.sc.desiredDept(d)
	if err != nil {
		p.record(directory.ProvisionDepartment, key, "", "error", localView(nil, d), nil, nil, err)
		return err
	}
	parent, err := p.remoteDept(ctx, parentKey)
	if err != nil {
		return err
	}
	want := federation.WriteDept{ParentID: parent, Name: name, Order: d.Order}
	local := localView(nil, d)
	if p.dryRun {
		action := "create"
		if o != nil && o.RemoteID != "" {
			if want.ID = o.RemoteID; bytes.Equal(marshal(want), o.Pushed) && !force {
				return nil
			}
			action = "update"
		} else {
			p.planned[key] = "(new " + key + ")"
		}
		p.record(directory.ProvisionDepartment, key, want.ID, "planned-"+action, local, nil, marshal(want), nil)
		return nil
	}
	if o != nil && o.State == directory.ProvisionPresent && o.RemoteID != "" {
		want.ID = o.RemoteID
		after := marshal(want)
		if !force && bytes.Equal(after, o.Pushed) {
			return nil
		}
		err := p.w.UpdateDepartment(ctx, want)
		if errors.Is(err, federation.ErrNotFound) {
			// Removed at the target behind qiao's back: create it again.
			if err := p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionDepartment, key); err != nil {
				return err
			}
			return p.pushDept(ctx, key, force)
		}
		action := "update"
		if !bytes.Equal(o.Pushed, nil) {
			var before federation.WriteDept
			if json.Unmarshal(o.Pushed, &before) == nil && before.ParentID != want.ParentID {
				action = "move"
			}
		}
		p.record(directory.ProvisionDepartment, key, want.ID, action, local, o.Pushed, after, err)
		if err != nil {
			return err
		}
		return p.ps.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: p.ent(), ObjectType: directory.ProvisionDepartment,
			LocalKey: key, RemoteID: want.ID, State: directory.ProvisionPresent, Pushed: after})
	}
	// Create. The intent is stored first: a crash after the platform created the department but
	// before its answer was stored leaves "creating", and the repeated create then adopts the
	// department of that name under that parent as its own.
	wasCreating := o != nil && o.State == directory.ProvisionCreating
	if err := p.ps.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: p.ent(), ObjectType: directory.ProvisionDepartment,
		LocalKey: key, State: directory.ProvisionCreating, Pushed: marshal(want)}); err != nil {
		return err
	}
	id, err := p.w.CreateDepartment(ctx, want)
	action := "create"
	if errors.Is(err, federation.ErrExists) {
		if !wasCreating {
			err = &problem{60008, fmt.Sprintf("a department %q already exists under WeCom department %s and qiao did not create it: rename one of them, or remove the other", name, parent)}
			_ = p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionDepartment, key)
		} else if id, err = p.w.FindDepartment(ctx, parent, name); err == nil {
			action = "adopt"
			want.ID = id
			err = p.w.UpdateDepartment(ctx, want)
		}
	}
	want.ID = id
	after := marshal(want)
	p.record(directory.ProvisionDepartment, key, id, action, local, nil, after, err)
	if err != nil {
		if !errors.Is(err, federation.ErrTransient) {
			// Refused: nothing was created, so nothing is qiao's (a timeout may have created it:
			// the intent stays for the retry to adopt).
			_ = p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionDepartment, key)
		}
		return err
	}
	return p.ps.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: p.ent(), ObjectType: directory.ProvisionDepartment,
		LocalKey: key, RemoteID: id, State: directory.ProvisionPresent, Pushed: after})
}

// deleteDept removes a department qiao created. The platform refuses while it has members or
// sub-departments (ErrNotEmpty): their own pushes come first, and the item is retried.
func (p *pusher) deleteDept(ctx context.Context, key string, o *directory.ProvisionedObject, d *directory.Department) error {
	if o == nil {
		return nil
	}
	if o.RemoteID == "" {
		return p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionDepartment, key)
	}
	if p.dryRun {
		p.record(directory.ProvisionDepartment, key, o.RemoteID, "planned-delete", localView(nil, d), o.Pushed, nil, nil)
		return nil
	}
	err := p.w.DeleteDepartment(ctx, o.RemoteID)
	if errors.Is(err, federation.ErrNotFound) {
		err = nil
	}
	if errors.Is(err, federation.ErrNotEmpty) {
		return err // retried once its members and sub-departments are gone; not recorded each time
	}
	p.record(directory.ProvisionDepartment, key, o.RemoteID, "delete", localView(nil, d), o.Pushed, nil, err)
	if err != nil {
		return err
	}
	return p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionDepartment, key)
}

// pushUser makes the target's person match the local one (or removes them).
func (p *pusher) pushUser(ctx context.Context, userID string, force bool) error {
	o, err := p.object(ctx, directory.ProvisionUser, userID)
	if err != nil {
		return err
	}
	want, reason, u, err := p.sc.desiredUser(ctx, userID, o != nil)
	if err != nil {
		p.record(directory.ProvisionUser, userID, "", "error", localView(u, nil), nil, nil, err)
		return err
	}
	local := localView(u, nil)
	if want == nil {
		if o == nil {
			return nil
		}
		if reason == reasonOwn {
			return nil
		}
		return p.removeUser(ctx, userID, o, u, reason)
	}
	if p.sc.t.Settings.DefaultDepartment != "" {
		want.user.Depts = []string{p.sc.t.Settings.DefaultDepartment}
	} else {
		for _, k := range want.depts {
			id, err := p.remoteDept(ctx, k)
			if err != nil {
				var pr *problem
				if errors.As(err, &pr) && pr.Code == 60003 {
					continue // a department outside the target's scope
				}
				return err
			}
			if !slices.Contains(want.user.Depts, id) {
				want.user.Depts = append(want.user.Depts, id)
			}
		}
		if len(want.user.Depts) == 0 {
			want.user.Depts = []string{p.sc.t.Settings.RootDepartment}
		}
	}
	after := marshal(want.user)
	if p.dryRun {
		action := "create"
		if o != nil {
			if bytes.Equal(after, o.Pushed) && !force {
				return nil
			}
			action = "update"
		}
		p.record(directory.ProvisionUser, userID, want.user.UserID, "planned-"+action, local, nil, after, nil)
		return nil
	}
	put := func(state string) error {
		return p.ps.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: p.ent(), ObjectType: directory.ProvisionUser,
			LocalKey: userID, RemoteID: want.user.UserID, State: state, Pushed: after})
	}
	if o != nil && o.State == directory.ProvisionPresent {
		if !force && bytes.Equal(after, o.Pushed) && o.RemoteID == want.user.UserID {
			return nil
		}
		upd := want.user
		action := "update"
		if o.RemoteID != want.user.UserID {
			upd.UserID, upd.NewUserID = o.RemoteID, want.user.UserID
			action = "rename"
		} else {
			var before federation.WriteUser
			if json.Unmarshal(o.Pushed, &before) == nil {
				switch {
				case before.Enabled && !upd.Enabled:
					action = "disable"
				case !slices.Equal(before.Depts, upd.Depts):
					action = "move"
				}
			}
		}
		err := p.w.UpdateUser(ctx, upd)
		if errors.Is(err, federation.ErrNotFound) {
			// Removed at the target behind qiao's back: create the person again.
			if err := p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionUser, userID); err != nil {
				return err
			}
			return p.pushUser(ctx, userID, force)
		}
		p.record(directory.ProvisionUser, userID, want.user.UserID, action, local, o.Pushed, after, err)
		if err != nil {
			return err
		}
		return put(directory.ProvisionPresent)
	}
	wasCreating := o != nil && o.State == directory.ProvisionCreating
	if err := put(directory.ProvisionCreating); err != nil {
		return err
	}
	err = p.w.CreateUser(ctx, want.user)
	action := "create"
	if errors.Is(err, federation.ErrExists) {
		if wasCreating {
			// Created before a crash, answer lost: the person is qiao's.
			action = "adopt"
			err = p.w.UpdateUser(ctx, want.user)
		} else {
			// Someone else's person with this userid: never taken over.
			_ = p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionUser, userID)
			err = &problem{60102, fmt.Sprintf("userid %s already exists in WeCom and qiao did not create it (a member of the WeCom organisation itself?): qiao leaves that person alone; choose another userid field, or remove the other member", want.user.UserID)}
			p.record(directory.ProvisionUser, userID, want.user.UserID, "error", local, nil, after, err)
			return err
		}
	}
	p.record(directory.ProvisionUser, userID, want.user.UserID, action, local, nil, after, err)
	if err != nil {
		if !errors.Is(err, federation.ErrTransient) {
			// The platform refused the data: nothing was created, so nothing is qiao's.
			_ = p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionUser, userID)
		}
		return err
	}
	return put(directory.ProvisionPresent)
}

// removeUser deletes (or, for a departure with departure: disable, disables) a person qiao
// created.
func (p *pusher) removeUser(ctx context.Context, userID string, o *directory.ProvisionedObject, u *directory.User, reason string) error {
	local := localView(u, nil)
	if reason == reasonDeparted && p.sc.t.Settings.Departure == "disable" && o.State == directory.ProvisionPresent {
		var cur federation.WriteUser
		if err := json.Unmarshal(o.Pushed, &cur); err == nil {
			if !cur.Enabled {
				return nil
			}
			cur.Enabled = false
			after := marshal(cur)
			if p.dryRun {
				p.record(directory.ProvisionUser, userID, o.RemoteID, "planned-disable", local, o.Pushed, after, nil)
				return nil
			}
			err := p.w.UpdateUser(ctx, cur)
			p.record(directory.ProvisionUser, userID, o.RemoteID, "disable", local, o.Pushed, after, err)
			if err != nil && !errors.Is(err, federation.ErrNotFound) {
				return err
			}
			return p.ps.PutProvisionedObject(ctx, &directory.ProvisionedObject{EnterpriseID: p.ent(), ObjectType: directory.ProvisionUser,
				LocalKey: userID, RemoteID: o.RemoteID, State: directory.ProvisionPresent, Pushed: after})
		}
	}
	if p.dryRun {
		p.record(directory.ProvisionUser, userID, o.RemoteID, "planned-delete", local, o.Pushed, nil, nil)
		return nil
	}
	err := p.w.DeleteUser(ctx, o.RemoteID)
	if errors.Is(err, federation.ErrNotFound) {
		err = nil
	}
	p.record(directory.ProvisionUser, userID, o.RemoteID, "delete", local, o.Pushed, nil, err)
	if err != nil {
		return err
	}
	return p.ps.DeleteProvisionedObject(ctx, p.ent(), directory.ProvisionUser, userID)
}
