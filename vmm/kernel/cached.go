package kernel

// Cached returns the newest complete kernel in cacheDir without fetching
// anything (for `doctor`).
func Cached(cacheDir string) (*Kernel, bool) { return newestCached(cacheDir) }
