package pipeline

// SetStepHook makes the backup call f at each step of its completion
// ("archive completed", "manifest stored"): where the fault tests kill a
// child process backing up to a folder (a bucket's are killed by the fault
// proxy, at the store).
func SetStepHook(f func(step string)) { stepHook = f }
