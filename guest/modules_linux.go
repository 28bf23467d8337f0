package guest

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// loadModules inserts the modules the host listed with finit_module(2).
// Each line is a module's path followed by the names of the modules it
// needs; a module loads as soon as those have, so independent chains load
// in parallel (module loading is ~10% of a TCG boot).
func loadModules(list string) error {
	b, err := os.ReadFile(list)
	if errors.Is(err, os.ErrNotExist) {
		return nil // a kernel with everything built in
	}
	if err != nil {
		return err
	}
	type mod struct {
		path string
		deps []string
		done chan struct{}
		err  error
	}
	mods := map[string]*mod{}
	var order []*mod
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := &mod{path: f[0], deps: f[1:], done: make(chan struct{})}
		// Keyed like the host names dependencies: '-' folded to '_'.
		mods[strings.ReplaceAll(strings.TrimSuffix(filepath.Base(f[0]), ".ko"), "-", "_")] = m
		order = append(order, m)
	}
	var wg sync.WaitGroup
	for _, m := range order {
		wg.Go(func() {
			defer close(m.done)
			for _, d := range m.deps {
				dep := mods[d]
				if dep == nil {
					continue // listed by the host as built in
				}
				<-dep.done
				if dep.err != nil {
					m.err = fmt.Errorf("insmod %s: dependency %s failed", m.path, d)
					return
				}
			}
			m.err = insmod(m.path)
		})
	}
	wg.Wait()
	var errs []error
	for _, m := range order {
		if m.err != nil {
			errs = append(errs, m.err)
		}
	}
	return errors.Join(errs...)
}

func insmod(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("insmod %s: %w", path, err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("insmod %s: %w", path, err)
	}
	log.Printf("insmod %s", path)
	return nil
}
