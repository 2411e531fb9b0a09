/* placeholder: being written */
#include "crypto/cert.h"
