package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// Values come out in item order whatever order the fetches finish in, never more than ahead
// fetches run at once, and several emits of one item stay together.
func TestOrderedKeepsOrderAndBound(t *testing.T) {
	const n, ahead = 60, 4
	var running, most atomic.Int32
	var got []string
	err := Ordered(context.Background(), n, ahead, func(ctx context.Context, i int, emit func(string) error) error {
		now := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); now > m && !most.CompareAndSwap(m, now); m = most.Load() {
		}
		for page := 0; page < 3; page++ {
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
			if err := emit(fmt.Sprintf("%d.%d", i, page)); err != nil {
				return err
			}
		}
		return nil
	}, func(v string) error {
		got = append(got, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n*3 {
		t.Fatalf("consumed %d values; want %d", len(got), n*3)
	}
	for i, v := range got {
		if want := fmt.Sprintf("%d.%d", i/3, i%3); v != want {
			t.Fatalf("value %d = %s; want %s", i, v, want)
		}
	}
	if m := most.Load(); m > ahead || m < 2 {
		t.Fatalf("at most %d fetches ran at once; want 2…%d", m, ahead)
	}
}

// A fetch's error comes back after everything before it was consumed and nothing after it, and
// only once every fetch has stopped; so does consume's own error.
func TestOrderedStopsAtFirstError(t *testing.T) {
	boom := errors.New("boom")
	var running atomic.Int32
	var got []int
	err := Ordered(context.Background(), 50, 5, func(ctx context.Context, i int, emit func(int) error) error {
		running.Add(1)
		defer running.Add(-1)
		if i == 7 {
			return boom
		}
		return emit(i)
	}, func(v int) error {
		got = append(got, v)
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v; want boom", err)
	}
	if len(got) != 7 || got[6] != 6 {
		t.Fatalf("consumed %v; want 0…6", got)
	}
	if r := running.Load(); r != 0 {
		t.Fatalf("%d fetches still running after Ordered returned", r)
	}

	stop := errors.New("stop")
	err = Ordered(context.Background(), 50, 5, func(ctx context.Context, i int, emit func(int) error) error {
		running.Add(1)
		defer running.Add(-1)
		for page := 0; page < 20; page++ {
			if err := emit(i); err != nil {
				return err // blocked on a full buffer until Ordered gives up
			}
		}
		return nil
	}, func(v int) error {
		if v == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v; want stop", err)
	}
	if r := running.Load(); r != 0 {
		t.Fatalf("%d fetches still running after consume failed", r)
	}
}

// DecodeJSON gives what encoding/json gives: the same values (case-insensitive names, a pointer
// behind an interface filled in place) and, on failure, encoding/json's own error types.
func TestDecodeJSONAsEncodingJSON(t *testing.T) {
	type inner struct {
		List []json.RawMessage `json:"list"`
	}
	var in inner
	env := struct {
		Code   int    `json:"errcode"`
		Msg    string `json:"errmsg"`
		Result any    `json:"result"`
	}{Result: &in}
	body := `{"ErrCode":0,"errmsg":"ok","result":{"list":[{"a":1},{"b":"\u5f20"}]}}`
	if err := DecodeJSON([]byte(body), &env); err != nil {
		t.Fatal(err)
	}
	if env.Msg != "ok" || len(in.List) != 2 || string(in.List[1]) != `{"b":"\u5f20"}` {
		t.Fatalf("decoded %+v %s", env, in.List)
	}
	var typeErr *json.UnmarshalTypeError
	if err := DecodeJSON([]byte(`{"errcode":"x","errmsg":"m"}`), &env); !errors.As(err, &typeErr) || env.Msg != "m" {
		t.Fatalf("a type error: %v (%T), errmsg %q", err, err, env.Msg)
	}
	var syntaxErr *json.SyntaxError
	if err := DecodeJSON([]byte(`{"errcode":`), &env); !errors.As(err, &syntaxErr) {
		t.Fatalf("broken JSON: %v (%T)", err, err)
	}
}
