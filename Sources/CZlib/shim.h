// zlib's deflate, for writing gzip-compressed layers.
#include <zlib.h>
