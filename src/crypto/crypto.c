/* placeholder: being written */
#include "crypto/crypto.h"
