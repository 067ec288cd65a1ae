#include <cblas.h>

/// LAPACK's general eigenvalue solver (OpenBLAS ships LAPACK; the header it would come from,
/// lapack.h, is not part of libopenblas-dev on every release, so it is declared here).
void dgeev_(const char *jobvl, const char *jobvr, const int *n, double *a, const int *lda, double *wr, double *wi,
            double *vl, const int *ldvl, double *vr, const int *ldvr, double *work, const int *lwork, int *info);
/// LAPACK's symmetric eigen-decomposition (eigenvalues ascending, eigenvectors in the columns).
void dsyev_(const char *jobz, const char *uplo, const int *n, double *a, const int *lda, double *w, double *work,
            const int *lwork, int *info);
