/* fuzz/fuzz_netrc.c - the netrc reader (tokens, quotes, macdef) on arbitrary files
 *
 * Input: one byte selecting the login to look for, then the file.  The file
 * is written to a private temporary file, since ba_secret_netrc() reads a path.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bluearrow/secret.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const logins[] = { NULL, "alice", "bob", "" };
	struct ba_buf out = BA_BUF_INIT, login = BA_BUF_INIT;
	struct ba_err err = BA_ERR_INIT;
	if (size < 1)
		return 0;
	if (!path[0]) {
		snprintf(path, sizeof(path), "/tmp/fuzz-netrc-%ld", (long)getpid());
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		abort();
	if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	close(fd);
	int r = ba_secret_netrc(&out, &login, path, "smtp.example.org", logins[data[0] % 4], &err);
	if (r == 0 && out.len != 0)
		abort(); /* not found means nothing appended */
	ba_buf_release_secret(&out);
	ba_buf_release(&login);
	unlink(path);
	return 0;
}
