//! Foreign vectors as solver state, without copies: [`HostVector`] (and so [`crate::Vector`])
//! for `nalgebra::DVector<T>` (feature `nalgebra`) and `faer::Col<T>` (feature `faer`), each a
//! view of its own contiguous storage. A right-hand side written in either library then runs
//! every solver (and every `adjoint` driver through `forward_on`) on its own type.

#[cfg(any(feature = "nalgebra", feature = "faer"))]
use crate::scalar::Scalar;
#[cfg(any(feature = "nalgebra", feature = "faer"))]
use crate::vector::HostVector;

#[cfg(feature = "nalgebra")]
impl<T: Scalar + nalgebra::Scalar> HostVector for nalgebra::DVector<T> {
    type Elem = T;
    #[inline]
    fn as_host_slice(&self) -> &[T] {
        self.as_slice()
    }
    #[inline]
    fn as_host_slice_mut(&mut self) -> &mut [T] {
        self.as_mut_slice()
    }
    fn host_zeros(len: usize) -> Self {
        nalgebra::DVector::from_element(len, T::zero())
    }
}

#[cfg(feature = "faer")]
impl<T: Scalar + faer::traits::ComplexField> HostVector for faer::Col<T> {
    type Elem = T;
    #[inline]
    fn as_host_slice(&self) -> &[T] {
        // An owned column is one contiguous allocation (unit row stride).
        self.try_as_col_major()
            .expect("an owned faer column is contiguous")
            .as_slice()
    }
    #[inline]
    fn as_host_slice_mut(&mut self) -> &mut [T] {
        self.try_as_col_major_mut()
            .expect("an owned faer column is contiguous")
            .as_slice_mut()
    }
    fn host_zeros(len: usize) -> Self {
        faer::Col::zeros(len)
    }
}
