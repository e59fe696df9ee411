package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// propertyBudgets is a hierarchy: one shared pool, one counter per tenant,
// one per (tenant, team) and an exact override for one tenant.
var propertyBudgets = []budget.Config{
	{Name: "fleet", Period: "day", HardUSD: budget.USDOf(3 * money.PerUSD)},
	{Name: "tenant", Match: map[string]string{"tenant": "*"}, Period: "month", HardUSD: budget.USDOf(money.PerUSD)},
	{Name: "acme", Match: map[string]string{"tenant": "acme"}, Period: "month", HardUSD: budget.USDOf(2 * money.PerUSD)},
	{Name: "team", Match: map[string]string{"tenant": "*", "team": "*"}, Period: "total", HardUSD: budget.USDOf(money.PerUSD / 2)},
}

// Property runs thousands of random reserve/settle sequences from many
// goroutines through a budget.Engine on the store, and checks after the run
// (and continuously, from an observer) that:
//   - committed + reserved never passes a hard cap while every request
//     settles at most what it reserved;
//   - every counter's committed equals the sum the test settled on it;
//   - reserved returns to exactly zero.
//
// The seed is logged; run with a fixed seed by setting seed != 0.
func Property(t *testing.T, newStore func(t *testing.T) budget.Store, seed uint64) {
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("property seed %d", seed)
	policies, err := budget.Compile(propertyBudgets, budget.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	store := newStore(t)
	clock := T0
	engine := budget.NewEngine(store, func() time.Time { return clock })
	ctx := context.Background()
	tenants := []string{"acme", "globex", "initech"}
	teams := []string{"a", "b"}

	// Every scope any request can touch, for the observer and the checks.
	var allScopes []budget.Scope
	seen := map[string]bool{}
	for _, tn := range tenants {
		for _, tm := range teams {
			for _, s := range policies.Applicable(map[string]string{"tenant": tn, "team": tm}) {
				if !seen[s.Key] {
					seen[s.Key] = true
					allScopes = append(allScopes, s)
				}
			}
		}
	}

	var mu sync.Mutex
	settled := map[string]money.Nano{} // scope key -> sum of actual settled
	var violations atomic.Int64
	check := func() {
		states, err := engine.Status(ctx, allScopes)
		if err != nil {
			t.Errorf("status: %v", err)
			return
		}
		for _, st := range states {
			if hard, ok := st.Scope.Budget.Hard(); ok && st.Committed+st.Reserved > hard {
				violations.Add(1)
				t.Errorf("%s: committed %s + reserved %s passes hard %s", st.Scope.Key, st.Committed, st.Reserved, hard)
			}
		}
	}

	stop := make(chan struct{})
	observerDone := make(chan struct{})
	go func() {
		defer close(observerDone)
		for {
			select {
			case <-stop:
				return
			default:
				check()
			}
		}
	}()

	const workers, perWorker = 16, 250
	var wg sync.WaitGroup
	var admitted, refused atomic.Int64
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for i := range perWorker {
				dims := map[string]string{"tenant": tenants[rng.IntN(len(tenants))], "team": teams[rng.IntN(len(teams))]}
				scopes := policies.Applicable(dims)
				amount := money.Nano(rng.Int64N(int64(money.PerUSD / 20)))
				res, rej, err := engine.Reserve(ctx, policies, scopes, "m", amount, fmt.Sprintf("w%d-%d", w, i))
				if err != nil {
					t.Errorf("reserve: %v", err)
					return
				}
				if rej != nil {
					refused.Add(1)
					continue
				}
				admitted.Add(1)
				actual := money.Nano(0)
				switch rng.IntN(3) {
				case 0: // released (upstream error, abort before answer)
				case 1:
					actual = amount
				default:
					actual = money.Nano(rng.Int64N(int64(amount) + 1))
				}
				if err := engine.Settle(ctx, res, actual); err != nil && !errors.Is(err, budget.ErrSettled) {
					t.Errorf("settle: %v", err)
					return
				}
				mu.Lock()
				for _, s := range res.Scopes {
					settled[s.Key] += actual
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-observerDone
	check()

	states, err := engine.Status(ctx, allScopes)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if st.Reserved != 0 {
			t.Errorf("%s: reserved %s left after every request settled", st.Scope.Key, st.Reserved)
		}
		if st.Committed != settled[st.Scope.Key] {
			t.Errorf("%s: committed %s, but the requests settled %s", st.Scope.Key, st.Committed, settled[st.Scope.Key])
		}
	}
	if admitted.Load() == 0 || refused.Load() == 0 {
		t.Errorf("the run should both admit and refuse (admitted %d, refused %d): caps or amounts are off", admitted.Load(), refused.Load())
	}
	t.Logf("admitted %d, refused %d, violations %d", admitted.Load(), refused.Load(), violations.Load())
}
