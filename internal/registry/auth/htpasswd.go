package auth

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// loadHtpasswd reads an htpasswd file of bcrypt entries (htpasswd -B);
// other hash kinds are refused, naming the line.
func loadHtpasswd(file string) (map[string][]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("registry auth: htpasswd: %w", err)
	}
	defer f.Close()
	users := map[string][]byte{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("registry auth: %s:%d: want USER:HASH", file, n)
		}
		if !strings.HasPrefix(hash, "$2a$") && !strings.HasPrefix(hash, "$2b$") && !strings.HasPrefix(hash, "$2y$") {
			return nil, fmt.Errorf("registry auth: %s:%d: %s's password is not a bcrypt hash (make it with htpasswd -B)", file, n, user)
		}
		users[user] = []byte(hash)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("registry auth: %s: %w", file, err)
	}
	return users, nil
}
