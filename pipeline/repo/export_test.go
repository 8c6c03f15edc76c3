package repo

// Forget drops an upload as a killed process would: its lock goes (the
// kernel releases a dead process's flocks), nothing is cleaned up.
func Forget(u Upload) {
	switch u := u.(type) {
	case *localUpload:
		u.done = true
		u.f.Close()
	case *s3Upload:
		u.finished = true
		close(u.queue)
		<-u.done
		if u.cur != nil {
			u.cur.f.Close()
		}
		u.lock.Close()
		u.lock = nil
	}
}
