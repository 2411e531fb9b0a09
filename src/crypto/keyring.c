/* placeholder: being written */
#include "crypto/keyring.h"
