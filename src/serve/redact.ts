// Error messages for clients: the server's own messages name files by their full local path (useful
// on the server's terminal), but a client has no business learning the machine's folder layout
// (user names, mount points). Absolute paths are cut to their last component. A path right after
// "#" is a JSON pointer into a request's schema (`#/properties/name`), not a file, and is kept.

const POSIX_PATH = /(?<![\w.~/…#-])(?:~|\/(?=[^\s/]))(?:\/?[^\s/'"`,;:()<>[\]{}]+)+\/?/g;
const WINDOWS_PATH = /\b[A-Za-z]:[\\/](?:[^\s\\/'"`,;:()<>[\]{}]+[\\/]?)+/g;

/** Each absolute path in `message` replaced by "…/<its last component>". */
export function redactPaths(message: string): string {
  const short = (p: string) => {
    const parts = p.split(/[\\/]+/).filter((x) => x.length > 0);
    return parts.length > 1 || p.startsWith('/') || p.startsWith('~') ? `…/${parts[parts.length - 1] ?? ''}` : p;
  };
  return message.replace(WINDOWS_PATH, short).replace(POSIX_PATH, short);
}
